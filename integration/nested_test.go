//go:build linux

package integration

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dindstore/dindstore/launch"
)

// innerArgs make the inner dockerd need no bridge or iptables.
var innerArgs = []string{"--", "--bridge=none", "--iptables=false", "--ip-masq=false"}

// launchDetached runs `dindstore launch --detach` against the outer engine
// and returns the container id.
func launchDetached(t *testing.T, o *outer, root, key string, extra ...string) string {
	t.Helper()
	return launchDetachedImage(t, o, root, key, dindImage, extra...)
}

// launchDetachedImage is launchDetached of another dind image.
func launchDetachedImage(t *testing.T, o *outer, root, key, image string, extra ...string) string {
	t.Helper()
	args := append([]string{"launch", key, "--kind", "loop", "--size", "8GiB", "--image", image, "--detach"}, extra...)
	r := runBinary(t, binary, o.env(), root, append(args, innerArgs...)...)
	if r.code != 0 {
		t.Fatalf("launch: exit %d: %s", r.code, r.stderr)
	}
	return strings.TrimSpace(r.stdout)
}

// innerDocker runs the docker CLI inside the dind container.
func innerDocker(t *testing.T, o *outer, id string, stdin []byte, args ...string) string {
	t.Helper()
	execArgs := []string{"exec"}
	if stdin != nil {
		execArgs = append(execArgs, "-i")
	}
	out, err := dockerStdin(o.sock, stdin, append(append(execArgs, id, "docker"), args...)...)
	if err != nil {
		t.Fatalf("inner docker %v: %v", args, err)
	}
	return out
}

// nestedRoot starts an outer dockerd with the dind image and gives a root
// whose launch of key is released, and whose mounts are cleaned up, after
// the test.
func nestedRoot(t *testing.T, key string) (*outer, string) {
	t.Helper()
	o, root := dindRoot(t)
	t.Cleanup(func() { runBinary(t, binary, o.env(), root, "release", key) })
	return o, root
}

// dindRoot starts an outer dockerd with the dind image and gives a root
// whose mounts are cleaned up after the test.
func dindRoot(t *testing.T) (*outer, string) {
	t.Helper()
	requireSuite(t)
	o := startOuter(t, true)
	buildDindImage(t, o)
	root := filepath.Join(t.TempDir(), "root")
	t.Cleanup(func() { cleanupRoot(t, root) })
	return o, root
}

// TestLaunchNested, on each engine: a real outer dockerd runs a dind image
// built here; the inner daemon lands on the engine's own store over the
// ext4 cache (overlay2 on dockerd 20.10, the containerd store's overlayfs
// snapshotter on the current engine), runs a container and builds a
// multi-layer image with both builders; a second launch of the key exits
// 75; release leaves nothing and records the store; the next launch finds
// the images.
func TestLaunchNested(t *testing.T) { forEachEngineRoot(t, launchNested) }

func launchNested(t *testing.T, o *outer, root string, e dindEngine) {
	t.Cleanup(func() { runBinary(t, binary, o.env(), root, "release", "nd") })
	// A dind whose daemon never comes up: the error carries its output.
	bad := runBinary(t, binary, o.env(), root, "launch", "bad", "--kind", "loop", "--size", "1GiB", "--image", e.image,
		"--detach", "--ready-timeout", "60s", "--", "--no-such-flag")
	if bad.code != 1 || !strings.Contains(bad.stderr, "before its daemon answered") || !strings.Contains(bad.stderr, "no-such-flag") {
		t.Fatalf("launch of a daemon that cannot start: exit %d: %s", bad.code, bad.stderr)
	}
	if b := listJSON(t, root)["bad"]; b.State != "idle" || b.ImageStore != "" {
		t.Fatalf("the failed launch still holds its cache, or recorded a store its daemon never used: %+v", b)
	}
	assertNothingLeft(t, root)
	id := launchDetachedImage(t, o, root, "nd", e.image, "--name", "dindstore-nd-"+e.name)
	info := innerDocker(t, o, id, nil, "info", "--format", "{{.Driver}} {{json .DriverStatus}}")
	wantDriver, wantStatus, wantStore := "overlay2 ", `["Backing Filesystem","extfs"]`, "graphdriver"
	if e.current {
		wantDriver, wantStatus, wantStore = "overlayfs ", `"io.containerd.snapshotter.v1"`, "snapshotter"
	}
	if !strings.HasPrefix(info, wantDriver) || !strings.Contains(info, wantStatus) {
		t.Fatalf("inner docker info: %q, want %s(%s)", info, wantDriver, wantStatus)
	}
	t.Logf("inner docker info: %s", strings.TrimSpace(info))
	innerDocker(t, o, id, busyboxTar(t), "import", "--change", `CMD ["/bin/sh"]`, "-", "bb:local")
	if out := innerDocker(t, o, id, nil, "run", "--rm", "--network", "none", "bb:local", "echo", "nested hello"); !strings.Contains(out, "nested hello") {
		t.Fatalf("inner container: %q", out)
	}
	buildInner(t, o, id)
	if e.current { // as docker:dind: buildx, the CLI plugin, with the engine's own builder
		out, err := o.docker("exec", id, "sh", "-c", `cd /tmp/ctx && docker buildx version &&
docker buildx build -q --network none -t built:buildx . >/dev/null && docker run --rm --network none built:buildx`)
		if err != nil || !strings.Contains(out, "payload") {
			t.Fatalf("docker buildx in the current engine's dind: %v\n%s", err, out)
		}
	}
	if out := innerDocker(t, o, id, nil, "system", "df"); !strings.Contains(out, "Images") {
		t.Fatalf("inner docker system df: %q", out)
	}

	r := runBinary(t, binary, o.env(), root, "launch", "nd", "--image", e.image, "--detach")
	if r.code != 75 || !strings.Contains(r.stderr, "in use by pid") {
		t.Fatalf("second launch: exit %d, %q; want 75 naming the holder", r.code, r.stderr)
	}
	if r := dindstore(t, root, "release", "nd"); r.code != 0 {
		t.Fatalf("release: exit %d: %s", r.code, r.stderr)
	}
	assertNothingLeft(t, root)
	if out, _ := o.docker("ps", "-aq", "--filter", "label=io.dindstore.key=nd"); strings.TrimSpace(out) != "" {
		t.Fatalf("the container is still there: %q", out)
	}
	if got := listJSON(t, root)["nd"].ImageStore; got != wantStore {
		t.Fatalf("the release recorded the %q store, want %q", got, wantStore)
	}

	id = launchDetachedImage(t, o, root, "nd", e.image)
	images := innerDocker(t, o, id, nil, "images", "--format", "{{.Repository}}:{{.Tag}}")
	for _, want := range []string{"bb:local", "built:classic", "built:buildkit"} {
		if !strings.Contains(images, want) {
			t.Errorf("the next launch lacks %s: %q", want, images)
		}
	}
	// The lease lives exactly as long as the container: stopping it from
	// the engine releases the cache.
	if _, err := o.docker("stop", id); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, root, "nd", 30*time.Second) // after its container stopped
	assertNothingLeft(t, root)
}

// buildInner builds a 4-layer image inside with the classic builder and
// with BuildKit, and runs each.
func buildInner(t *testing.T, o *outer, id string) {
	t.Helper()
	script := `set -e; mkdir -p /tmp/ctx && cd /tmp/ctx && echo payload > f &&
printf 'FROM bb:local\nRUN echo one > /1\nCOPY f /f\nRUN dd if=/dev/zero of=/blob bs=1M count=4 2>/dev/null\nENV X=y\nRUN echo $X > /3\nCMD cat /1 /f /3\n' > Dockerfile &&
DOCKER_BUILDKIT=0 docker build -q --network none -t built:classic . >/dev/null &&
DOCKER_BUILDKIT=1 docker build -q --network none -t built:buildkit . >/dev/null &&
docker run --rm --network none built:classic && docker run --rm --network none built:buildkit`
	out, err := o.docker("exec", id, "sh", "-c", script)
	if err != nil || strings.Count(out, "payload") != 2 {
		t.Fatalf("inner builds: %v\n%s", err, out)
	}
}

// TestDindWithoutDindstore: the same image with nothing at /var/lib/docker
// (its data on the container's own overlay root) does not get overlay2:
// what dindstore changes.
func TestDindWithoutDindstore(t *testing.T) {
	requireSuite(t)
	o := startOuter(t, true)
	buildDindImage(t, o)
	id, err := o.docker(append([]string{"run", "-d", "--privileged", dindImage}, innerArgs[1:]...)...)
	if err != nil {
		t.Fatal(err)
	}
	id = strings.TrimSpace(id)
	var info string
	for i := 0; i < 150; i++ {
		if info, err = o.docker("exec", id, "docker", "info", "--format", "{{.Driver}}"); err == nil {
			break
		}
		if st, _ := o.docker("inspect", "-f", "{{.State.Running}}", id); strings.TrimSpace(st) == "false" {
			logs, _ := o.docker("logs", id)
			t.Logf("without dindstore the inner dockerd failed to start:\n%s", lastLines(logs, 5))
			return
		}
		sleepShort()
	}
	if strings.TrimSpace(info) == "overlay2" {
		t.Fatalf("without dindstore the inner daemon still got overlay2")
	}
	t.Logf("without dindstore the inner daemon fell back to: %s", strings.TrimSpace(info))
}

// TestLaunchExplainsCaps: on an engine whose default runtime asks for
// capabilities this host lacks, launch says which, and what to do.
func TestLaunchExplainsCaps(t *testing.T) {
	requireSuite(t)
	if len(launch.MissingCaps()) == 0 {
		t.Skip("skipping: this host's bounding set has every capability, so --privileged works")
	}
	o := startOuter(t, false)
	buildDindImage(t, o)
	root := filepath.Join(t.TempDir(), "root")
	t.Cleanup(func() { cleanupRoot(t, root) })
	r := runBinary(t, binary, o.env(), root, "launch", "caps", "--kind", "loop", "--size", "1GiB", "--image", dindImage)
	if r.code != 1 || !strings.Contains(r.stderr, "bounding set lacks") || !strings.Contains(r.stderr, "--runtime") {
		t.Fatalf("launch on a plain runc: exit %d, %q", r.code, r.stderr)
	}
	t.Logf("%s", strings.TrimSpace(r.stderr))
	assertNothingLeft(t, root)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestLaunchHolderKilled: the detached holder of a launch is SIGKILLed; its
// guard stops and removes the dind container (the lease's payload) and
// releases the cache within seconds, with nothing else run.
func TestLaunchHolderKilled(t *testing.T) {
	o, root := nestedRoot(t, "nk")
	id := launchDetached(t, o, root, "nk")
	holder := listJSON(t, root)["nk"].HolderPID
	if holder <= 0 {
		t.Fatalf("no holder pid for nk: %+v", listJSON(t, root)["nk"])
	}
	must(t, syscall.Kill(holder, syscall.SIGKILL))
	waitIdle(t, root, "nk", 60*time.Second) // the guard stopped the container and released
	assertNothingLeft(t, root)
	if out, _ := o.docker("ps", "-aq", "--filter", "id="+id); strings.TrimSpace(out) != "" {
		t.Fatalf("the dead holder's container is still there: %q", out)
	}
}
