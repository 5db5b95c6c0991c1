//go:build linux

package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// rootlessNet gives the rootless daemon's slirp4netns a tun device open
// to its user: a node of the test's own (the tun's 10:200, mode 0666),
// passed with --device. This VM's /dev/net/tun is 0600 (no udev rule), as
// some hosts' are; most make it 0666, and then no --device is needed.
func rootlessNet(t *testing.T) []string {
	tun := filepath.Join(t.TempDir(), "tun")
	must(t, unix.Mknod(tun, unix.S_IFCHR|0o666, int(unix.Mkdev(10, 200))))
	must(t, os.Chmod(tun, 0o666)) // past the umask
	return []string{"--device", tun + ":/dev/net/tun"}
}

// TestLaunchRootless, on each engine: a docker:dind-rootless style image
// (20.10: Debian's rootlesskit, uidmap and slirp4netns, docker.io's
// dockerd-rootless.sh; current: the engine's own dockerd-rootless.sh with
// rootlesskit 2; user rootless; slirp4netns for its network) launched on a
// loop cache — rootless detected from the image's user, not privileged:
// inside, `docker info` lists rootless and the engine's store on the
// cache (overlay2 on extfs; the containerd store on the current engine),
// a container runs, and the image persists to the next launch (whose
// holder, killed, leaves the guard to stop it); the cache is recorded as
// 1000:1000's and refused to another uid, naming both.
func TestLaunchRootless(t *testing.T) {
	requireSuite(t)
	o := startOuter(t, true)
	for _, e := range dindRootlessEngines(t, o) {
		t.Run(e.name, func(t *testing.T) { launchRootless(t, o, e) })
	}
}

func launchRootless(t *testing.T, o *outer, e dindEngine) {
	root := filepath.Join(t.TempDir(), "root")
	t.Cleanup(func() { runBinary(t, binary, o.env(), root, "release", "rl"); cleanupRoot(t, root) })
	launchRL := func() string {
		t.Helper()
		args := append([]string{"launch", "rl", "--kind", "loop", "--size", "4GiB", "--image", e.image,
			"--name", "dindstore-rl-" + e.name, "--detach"}, rootlessNet(t)...)
		r := runBinary(t, binary, o.env(), root, append(args, "--", "--bridge=none", "--iptables=false")...)
		if r.code != 0 {
			t.Fatalf("launch: exit %d: %s", r.code, r.stderr)
		}
		if b, _ := os.ReadFile(filepath.Join(root, "logs", "rl.log")); !strings.Contains(string(b), "launching it rootless") {
			t.Fatalf("the holder did not say it detected a rootless image: %q", b)
		}
		return strings.TrimSpace(r.stdout)
	}
	id := launchRL()
	info := innerDocker(t, o, id, nil, "info", "--format", "{{.Driver}} {{json .DriverStatus}} {{json .SecurityOptions}}")
	t.Logf("inner docker info: %s", strings.TrimSpace(info))
	wantDriver, wantStatus := "overlay2 ", `["Backing Filesystem","extfs"]`
	if e.current {
		wantDriver, wantStatus = "overlayfs ", `"io.containerd.snapshotter.v1"`
	}
	if !strings.HasPrefix(info, wantDriver) || !strings.Contains(info, wantStatus) || !strings.Contains(info, "name=rootless") {
		t.Fatalf("inner docker info: %q, want %s(%s) and rootless", info, wantDriver, wantStatus)
	}
	if ps := mustDocker(t, o, "top", id); !strings.Contains(ps, "slirp4netns") || !strings.Contains(ps, "rootlesskit") {
		t.Fatalf("no rootlesskit with slirp4netns in the container:\n%s", ps)
	}
	if hc := mustDocker(t, o, "inspect", "-f", "{{.HostConfig.Privileged}} {{.Config.User}}", id); strings.TrimSpace(hc) != "false rootless" {
		t.Fatalf("privileged, user: %q", hc)
	}
	innerDocker(t, o, id, busyboxTar(t), "import", "-", "bb:rootless")
	if out := innerDocker(t, o, id, nil, "run", "--rm", "--network", "none", "bb:rootless", "echo", "rootless inner"); !strings.Contains(out, "rootless inner") {
		t.Fatalf("inner container: %q", out)
	}
	if r := dindstore(t, root, "release", "rl"); r.code != 0 {
		t.Fatalf("release: exit %d: %s", r.code, r.stderr)
	}
	assertNothingLeft(t, root)

	var rec struct{ Record struct{ Owner string } }
	must(t, json.Unmarshal([]byte(dindstore(t, root, "inspect", "rl").stdout), &rec))
	if e := listJSON(t, root)["rl"]; rec.Record.Owner != "1000:1000" || e.Owner != "1000:1000" {
		t.Fatalf("recorded owner %q, ls says %q; want 1000:1000", rec.Record.Owner, e.Owner)
	}
	id = launchRL()
	t.Logf("\n%s", checkMode(t, o, id, "rootless"))
	if out := innerDocker(t, o, id, nil, "images", "--format", "{{.Repository}}:{{.Tag}}"); !strings.Contains(out, "bb:rootless") {
		t.Fatalf("the next launch lacks the image: %q", out)
	}
	// Its holder killed: the guard stops the rootless container and releases.
	must(t, syscall.Kill(listJSON(t, root)["rl"].HolderPID, syscall.SIGKILL))
	waitIdle(t, root, "rl", 60*time.Second)
	assertNothingLeft(t, root)

	r := runBinary(t, binary, o.env(), root, "launch", "rl", "--image", e.image, "--owner", "2000:2000", "--detach")
	if r.code != 2 || !strings.Contains(r.stderr, "1000:1000") || !strings.Contains(r.stderr, "2000:2000") {
		t.Fatalf("launch for another uid: exit %d, %s; want 2 naming both", r.code, r.stderr)
	}
	assertNothingLeft(t, root)
}
