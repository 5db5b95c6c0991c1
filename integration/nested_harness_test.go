//go:build linux

package integration

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dindstore/dindstore/launch"
)

// dindImage is the registry-free dind image the nested tests use.
const dindImage = "dindstore-test/dind:local"

// outer is a dockerd started by a test to run dind containers.
type outer struct {
	sock string
	cmd  *exec.Cmd
	log  string
}

// startOuter starts an outer dockerd with private paths, no bridge and no
// iptables. With wrapRuntime, its default runtime is a runc wrapper that
// drops the capabilities this host's bounding set lacks: --privileged asks
// for all of them, and plain runc fails with "unable to apply caps" here.
func startOuter(t testing.TB, wrapRuntime bool) *outer {
	t.Helper()
	return startOuterWith(t, wrapRuntime)
}

// startOuterWith is startOuter with extra flags for the outer dockerd.
func startOuterWith(t testing.TB, wrapRuntime bool, extra ...string) *outer {
	t.Helper()
	dir, err := os.MkdirTemp("", "dindstore-outer-")
	must(t, err)
	o := &outer{sock: filepath.Join(dir, "d.sock"), log: filepath.Join(dir, "dockerd.log")}
	args := []string{"--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "d.pid"), "-H", "unix://" + o.sock, "--bridge=none", "--iptables=false",
		"--ip-masq=false", "--containerd-namespace", "dindstore-outer", "--containerd-plugins-namespace", "dindstore-outer-p"}
	if wrapRuntime {
		wrapper := writeRuncWrapper(t, dir)
		args = append(args, "--add-runtime", "dindstore-test-runc="+wrapper, "--default-runtime", "dindstore-test-runc")
	}
	args = append(args, extra...)
	logf, err := os.Create(o.log)
	must(t, err)
	o.cmd = exec.Command("dockerd", args...)
	o.cmd.Stdout, o.cmd.Stderr = logf, logf
	must(t, o.cmd.Start())
	t.Cleanup(func() { o.stop(t); logf.Close(); _ = os.RemoveAll(dir) })
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := o.docker("version"); err == nil {
			return o
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(o.log)
			t.Fatalf("outer dockerd did not start:\n%s", b)
		}
	}
}

func (o *outer) docker(args ...string) (string, error) {
	return dockerStdin(o.sock, nil, args...)
}

// env is the environment that points dindstore launch at this engine.
func (o *outer) env() []string { return []string{"DOCKER_HOST=unix://" + o.sock} }

// stop removes every container of the outer daemon and stops it.
func (o *outer) stop(t testing.TB) {
	if ids, err := o.docker("ps", "-aq"); err == nil && strings.TrimSpace(ids) != "" {
		_, _ = o.docker(append([]string{"rm", "-f", "-v"}, strings.Fields(ids)...)...)
	}
	_ = o.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = o.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Errorf("outer dockerd did not stop; killing it")
		_ = o.cmd.Process.Kill()
		<-done
	}
	// What the outer daemon mounted below its data root goes with it.
	cleanupMountsBelow(t, filepath.Dir(o.sock))
}

// writeRuncWrapper writes a runc wrapper that deletes, from the OCI spec it
// is given, the capabilities this host's bounding set lacks.
func writeRuncWrapper(t testing.TB, dir string) string {
	t.Helper()
	drop := launch.MissingCaps()
	script := fmt.Sprintf(`#!/bin/sh
# Test-only: --privileged asks for every capability; this host lacks: %[1]s
strip() { [ -f "$1" ] || return 0
  for c in %[1]s; do sed -i -e "s/\"$c\",//g" -e "s/,\"$c\"//g" -e "s/\"$c\"//g" "$1"; done; }
prev=
for a in "$@"; do
  case "$prev" in --bundle|-b) strip "$a/config.json";; --process|-p) strip "$a";; esac
  case "$a" in --bundle=*) strip "${a#--bundle=}/config.json";; --process=*) strip "${a#--process=}";; esac
  prev=$a
done
exec %[2]s "$@"
`, strings.Join(drop, " "), runcPath(t))
	p := filepath.Join(dir, "runc-wrapper")
	must(t, os.WriteFile(p, []byte(script), 0o755))
	return p
}

// writeIsolatingRuntime writes a runc wrapper that stands in for a runtime
// that isolates by itself (Sysbox): it records each call in calls and, on
// create, gives the (unprivileged) container what an inner engine needs —
// SYS_ADMIN and NET_ADMIN, no seccomp filter, writable cgroups, forwarding.
func writeIsolatingRuntime(t testing.TB, calls string) string {
	t.Helper()
	if _, err := exec.LookPath("jq"); err != nil {
		t.Skip("skipping: jq not found; `make deps` installs it")
	}
	script := fmt.Sprintf(`#!/bin/sh
# Test-only stand-in for an isolating runtime (see writeIsolatingRuntime).
echo "$*" >> %[1]q
prev=; bundle=; create=
for a in "$@"; do
  case "$prev" in --bundle|-b) bundle=$a;; esac
  case "$a" in --bundle=*) bundle=${a#--bundle=};; create) create=1;; esac
  prev=$a
done
if [ -n "$create" ] && [ -n "$bundle" ]; then
  jq '.process.capabilities |= with_entries(.value = (.value + ["CAP_SYS_ADMIN","CAP_NET_ADMIN"] | unique))
      | del(.linux.seccomp) | .mounts |= map(if .type == "cgroup" then .options -= ["ro"] else . end)
      | .linux.sysctl["net.ipv4.ip_forward"] = "1"' "$bundle/config.json" > "$bundle/config.json.new" &&
    mv "$bundle/config.json.new" "$bundle/config.json"
fi
exec %[2]s "$@"
`, calls, runcPath(t))
	p := filepath.Join(t.TempDir(), "isolating-runtime")
	must(t, os.WriteFile(p, []byte(script), 0o755))
	return p
}

func runcPath(t testing.TB) string {
	p, err := exec.LookPath("runc")
	if err != nil {
		t.Skip("skipping: runc not found")
	}
	return p
}

// buildDindTarOnce builds the dind rootfs tarball once per test binary.
var buildDindTarOnce = sync.OnceValue(buildDindTar)

// buildDindImage imports the dind image into the outer daemon (built once
// per test binary into a cached tarball).
func buildDindImage(t testing.TB, o *outer) {
	t.Helper()
	if err := buildDindTarOnce(); err != nil {
		t.Fatal(err)
	}
	importDindTar(t, o, dindTar, dindImage)
}

var (
	dindTar         = filepath.Join(os.TempDir(), fmt.Sprintf("dindstore-dind-%d.tar", os.Getpid()))
	dindRootlessTar = filepath.Join(os.TempDir(), fmt.Sprintf("dindstore-dind-rootless-%d.tar", os.Getpid()))
)

func buildDindTar() error { return buildRootfsTar("testdata/dind-rootfs.sh", dindTar) }

// buildRootfsTar runs a rootfs script into a temporary directory (with
// args after it) and tars the result to tar.
func buildRootfsTar(script, tar string, args ...string) error {
	return buildRootfsTarEnv(script, tar, "", args...)
}

// buildRootfsTarEnv is buildRootfsTar with one more environment variable
// (NAME=VALUE) for the script, "" for none.
func buildRootfsTarEnv(script, tar, env string, args ...string) error {
	dir, err := os.MkdirTemp("", "dindstore-dind-rootfs-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cmd := exec.Command("sh", append([]string{script, dir}, args...)...)
	if env != "" {
		cmd.Env = append(os.Environ(), env)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build the rootfs (%s): %v\n%s", script, err, out)
	}
	if out, err := exec.Command("tar", "-C", dir, "-cf", tar, ".").CombinedOutput(); err != nil {
		return fmt.Errorf("tar the rootfs: %v\n%s", err, out)
	}
	return nil
}

// dindRootlessImage is the registry-free docker:dind-rootless style image.
const dindRootlessImage = "dindstore-test/dind-rootless:local"

var buildRootlessOnce sync.Once

// buildDindRootlessImage imports the rootless dind image (built once per
// test binary) into the outer daemon: user rootless, its socket in
// XDG_RUNTIME_DIR, DOCKER_HOST pointing at it, as docker:dind-rootless.
func buildDindRootlessImage(t testing.TB, o *outer) {
	t.Helper()
	for _, tool := range []string{"rootlesskit", "newuidmap", "slirp4netns"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping: %s not found; `make deps` installs it", tool)
		}
	}
	var err error
	buildRootlessOnce.Do(func() { err = buildRootfsTar("testdata/dind-rootless-rootfs.sh", dindRootlessTar) })
	if err != nil {
		t.Fatal(err)
	}
	importRootlessTar(t, o, dindRootlessTar, dindRootlessImage)
}

// importRootlessTar imports a rootless dind rootfs tarball as image, shaped
// like docker:dind-rootless.
func importRootlessTar(t testing.TB, o *outer, tarPath, image string) {
	t.Helper()
	tar, err := os.ReadFile(tarPath)
	must(t, err)
	if _, err := dockerStdin(o.sock, tar, "import", "--change", "USER rootless",
		"--change", "ENV XDG_RUNTIME_DIR=/run/user/1000", "--change", "ENV HOME=/home/rootless",
		"--change", "ENV DOCKER_HOST=unix:///run/user/1000/docker.sock",
		"--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"--change", `ENTRYPOINT ["/usr/bin/docker-init","--","/usr/local/bin/dind-rootless"]`,
		"-", image); err != nil {
		t.Fatal(err)
	}
}

// cleanupMountsBelow unmounts whatever is still mounted below dir.
func cleanupMountsBelow(t testing.TB, dir string) {
	raw, _ := os.ReadFile("/proc/self/mountinfo")
	var mps []string
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			mps = append(mps, f[4])
		}
	}
	for i := len(mps) - 1; i >= 0; i-- {
		_ = exec.Command("umount", mps[i]).Run()
	}
}

func sleepShort() { time.Sleep(200 * time.Millisecond) }

// startRegistry runs a docker-registry on a free 127.0.0.1 port with its
// storage in the test's temp dir, and returns its host:port.
func startRegistry(t *testing.T) string { return startRegistryOn(t, "127.0.0.1") }

// startRegistryOn is startRegistry on an address of this host (the gateway
// of a container network, for daemons in containers).
func startRegistryOn(t *testing.T, host string) string {
	t.Helper()
	if _, err := exec.LookPath("docker-registry"); err != nil {
		t.Skip("skipping: docker-registry not found; `make deps` installs it")
	}
	addr := net.JoinHostPort(host, strconv.Itoa(freePortOn(t, host)))
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	must(t, os.WriteFile(cfg, []byte(fmt.Sprintf("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)), 0o600))
	cmd := exec.Command("docker-registry", "serve", cfg)
	must(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for i := 0; i < 100; i++ {
		if resp, err := http.Get("http://" + addr + "/v2/"); err == nil {
			resp.Body.Close()
			return addr
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("docker-registry did not answer")
	return ""
}
