//go:build linux

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dindstore/dindstore/loopdev"
	"golang.org/x/sys/unix"
)

// modeReport is what the same checks found inside a dind container
// launched in one mode.
type modeReport struct {
	mode                        string
	hostDisks, loopNodes        int  // block device nodes of host disks / loop devices in /dev
	readsHostDisk, attachesLoop bool // could read the host's root disk; attach a loop device (a node made there)
	mountsLoop                  bool // and make a filesystem on it and mount it
	capEff                      string
	innerBuild, innerContainers bool
}

func (m modeReport) String() string {
	return fmt.Sprintf("| %s | %d | %d | %v | %v | %v | %s | %v | %v |", m.mode, m.hostDisks, m.loopNodes,
		m.readsHostDisk, m.attachesLoop, m.mountsLoop, m.capEff, m.innerBuild, m.innerContainers)
}

// hostRootDev is the device number of the filesystem at / on the host.
func hostRootDev(t *testing.T) (major, minor uint32) {
	var st unix.Stat_t
	must(t, unix.Stat("/", &st))
	return unix.Major(st.Dev), unix.Minor(st.Dev)
}

// checkMode runs, inside the dind container id as its root, the checks of
// docs/security.md's table: the host's block devices it sees, whether it
// can read the host's root disk or attach a host loop device to a file
// (each through a node it makes itself), its capabilities, and whether the
// inner engine builds an image and runs containers. (This VM refuses to
// open its root disk even to the host's root, so that column reads false
// in every mode here.)
func checkMode(t *testing.T, o *outer, id, mode string) modeReport {
	t.Helper()
	maj, min := hostRootDev(t)
	script := fmt.Sprintf(`cd /dev; n=0; for d in sd* vd* xvd* nvme* hd*; do [ -b "$d" ] && n=$((n+1)); done; echo "disks $n"
l=0; for d in loop*; do [ -b "$d" ] && l=$((l+1)); done; echo "loops $l"
mknod /dev/dindstore-hostdisk b %d %d && dd if=/dev/dindstore-hostdisk of=/dev/null bs=4096 count=1 && echo "reads-host-disk"
rm -f /dev/dindstore-hostdisk
dd if=/dev/zero of=/tmp/img bs=1M count=8 2>/dev/null
mkdir -p /tmp/mnt
if mknod /dev/dindstore-loop b 7 %[3]d && losetup /dev/dindstore-loop /tmp/img; then
  echo "attaches-loop"
  mke2fs -q /dev/dindstore-loop && mount /dev/dindstore-loop /tmp/mnt && echo "mounts-loop" && umount /tmp/mnt
  losetup -d /dev/dindstore-loop
fi
rm -f /dev/dindstore-loop
grep CapEff /proc/1/status`, maj, min, checkLoop)
	// As the container's root: what a process that got that far could do.
	t.Cleanup(func() { detachLoop(checkLoop, "/tmp/img") }) // if the script died with it attached
	out, err := o.docker("exec", "-u", "0", id, "sh", "-c", script)
	if err != nil {
		t.Fatalf("%s: checks: %v\n%s", mode, err, out)
	}
	t.Logf("%s: the checks said:\n%s", mode, out)
	m := modeReport{mode: mode}
	_, _ = fmt.Sscanf(lineWith(out, "disks "), "disks %d", &m.hostDisks)
	_, _ = fmt.Sscanf(lineWith(out, "loops "), "loops %d", &m.loopNodes)
	m.readsHostDisk, m.attachesLoop = strings.Contains(out, "reads-host-disk"), strings.Contains(out, "attaches-loop")
	m.mountsLoop = strings.Contains(out, "mounts-loop")
	m.capEff = strings.TrimSpace(strings.TrimPrefix(lineWith(out, "CapEff:"), "CapEff:"))
	innerDocker(t, o, id, busyboxTar(t), "import", "--change", `CMD ["/bin/sh"]`, "-", "bb:local")
	buildInner(t, o, id) // fails the test when the inner engine cannot build and run
	m.innerBuild, m.innerContainers = true, true
	return m
}

func lineWith(out, prefix string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), prefix) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// TestLaunchUnprivileged, on each engine: `launch --unprivileged` on a loop
// cache — inside, no host disk or loop device node, and none usable
// through a node made there (no loop device can be attached), yet the
// inner engine builds an image and runs containers, on its own bridge
// network too (Docker 28 and later write each inner container's interface
// sysctls, under the read-only /proc/sys of an unprivileged container);
// the same checks in the privileged mode show the difference. The table
// goes to the log (and to docs/security.md).
func TestLaunchUnprivileged(t *testing.T) {
	requireSuite(t)
	o := startOuter(t, true)
	forEachEngine(t, o, func(t *testing.T, e dindEngine) {
		root := filepath.Join(t.TempDir(), "root")
		t.Cleanup(func() {
			for _, key := range []string{"up", "pr", "ub"} {
				runBinary(t, binary, o.env(), root, "release", key)
			}
			cleanupRoot(t, root)
		})
		launchUnprivileged(t, o, root, e)
	})
}

func launchUnprivileged(t *testing.T, o *outer, root string, e dindEngine) {
	unpriv := checkMode(t, o, launchDetachedImage(t, o, root, "up", e.image, "--unprivileged", "--name", "dindstore-up-"+e.name), "unprivileged")
	priv := checkMode(t, o, launchDetachedImage(t, o, root, "pr", e.image), "privileged")
	t.Logf("%s:\n| mode | host disks in /dev | loop nodes | reads host disk | attaches a loop device | mounts it | CapEff | builds | runs |\n%s\n%s",
		e.name, priv, unpriv)
	if unpriv.hostDisks != 0 || unpriv.loopNodes != 0 || unpriv.readsHostDisk || unpriv.attachesLoop || unpriv.mountsLoop {
		t.Errorf("unprivileged dind reaches host devices: %s", unpriv)
	}
	if priv.hostDisks == 0 || !priv.attachesLoop || !priv.mountsLoop {
		t.Errorf("privileged dind reaches no host device: the checks do not check anything: %s", priv)
	}
	info, err := o.docker("inspect", "-f", "{{.HostConfig.Privileged}} {{.HostConfig.CapAdd}} {{.HostConfig.SecurityOpt}}",
		"dindstore-up-"+e.name)
	if err != nil || !strings.HasPrefix(info, "false ") {
		t.Errorf("unprivileged container's host config: %q, %v", info, err)
	}
	// The inner engine with its default flags: its own bridge, iptables.
	r := runBinary(t, binary, o.env(), root, "launch", "ub", "--kind", "loop", "--size", "2GiB", "--image", e.image,
		"--unprivileged", "--detach")
	if r.code != 0 {
		t.Fatalf("unprivileged launch with the inner engine's own network: exit %d: %s", r.code, r.stderr)
	}
	id := strings.TrimSpace(r.stdout)
	innerDocker(t, o, id, busyboxTar(t), "import", "--change", `CMD ["/bin/sh"]`, "-", "bb:local")
	out, err := o.docker("exec", id, "docker", "run", "--rm", "bb:local", "sh", "-c", "ip -o addr show eth0 && echo bridged-ok")
	if err != nil || !strings.Contains(out, "bridged-ok") {
		t.Fatalf("an inner container on the inner engine's bridge, unprivileged: %v\n%s", err, out)
	}
	// The rest of /proc/sys (host-wide sysctls) stays read-only: read from
	// the mount table, without writing anything.
	opts, _ := o.docker("exec", id, "sh", "-c", `awk '$5 == "/proc/sys" { print $6 }' /proc/self/mountinfo`)
	if !strings.HasPrefix(strings.TrimSpace(opts), "ro") {
		t.Errorf("/proc/sys in the unprivileged dind is mounted %q, want read-only", opts)
	}
	for _, key := range []string{"up", "pr", "ub"} {
		if r := dindstore(t, root, "release", key); r.code != 0 {
			t.Fatalf("release %s: exit %d: %s", key, r.code, r.stderr)
		}
	}
	assertNothingLeft(t, root)
}

// TestLaunchRuntimePassThrough: `--runtime NAME` reaches the engine as the
// container's runtime, and the container is then not privileged. Sysbox
// cannot be installed here: a runc wrapper registered under another name
// stands in for it (it records its calls, and gives the container what
// --unprivileged would, as a runtime that isolates by itself must).
func TestLaunchRuntimePassThrough(t *testing.T) {
	requireSuite(t)
	calls := filepath.Join(t.TempDir(), "calls")
	o := startOuterWith(t, false, "--add-runtime", "isolating-test="+writeIsolatingRuntime(t, calls))
	forEachEngine(t, o, func(t *testing.T, e dindEngine) {
		root := filepath.Join(t.TempDir(), "root")
		t.Cleanup(func() { runBinary(t, binary, o.env(), root, "release", "rt"); cleanupRoot(t, root) })
		id := launchDetachedImage(t, o, root, "rt", e.image, "--runtime", "isolating-test", "--name", "dindstore-rt-"+e.name)
		info, err := o.docker("inspect", "-f", "{{.HostConfig.Runtime}} {{.HostConfig.Privileged}}", id)
		if err != nil || strings.TrimSpace(info) != "isolating-test false" {
			t.Fatalf("container runtime and privilege: %q, %v", info, err)
		}
		if b, _ := os.ReadFile(calls); !strings.Contains(string(b), "create") {
			t.Fatalf("the runtime was not called to create the container: %q", b)
		}
		t.Logf("%s:\n%s", e.name, checkMode(t, o, id, "runtime (stand-in)"))
		if r := runBinary(t, binary, o.env(), root, "launch", "rt2", "--image", e.image, "--runtime", "x",
			"--unprivileged"); r.code != 2 || !strings.Contains(r.stderr, "not privileged already") {
			t.Fatalf("--unprivileged with --runtime: exit %d: %s", r.code, r.stderr)
		}
		if r := dindstore(t, root, "release", "rt"); r.code != 0 {
			t.Fatalf("release: exit %d: %s", r.code, r.stderr)
		}
		assertNothingLeft(t, root)
	})
}

// checkLoop is the loop device number checkMode's script attaches through
// a node of its own.
const checkLoop = 250

// detachLoop detaches loop device number n when it is still bound to
// backing (as the container saw the file).
func detachLoop(n int, backing string) {
	devs, _ := loopdev.List()
	for _, d := range devs {
		if d.Number == n && d.BackingFile == backing {
			_ = loopdev.Detach(d.Path)
		}
	}
}
