//go:build linux

package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDriverMismatch: a dir cache pinned to overlay2 on ext4, then found on
// a filesystem where overlay does not work (its root copied onto an overlay
// mount), is refused with exit 1 and a message naming both drivers; a vfs
// cache there works.
func TestDriverMismatch(t *testing.T) {
	requireSuite(t)
	base := t.TempDir()
	ext4Root := filepath.Join(base, "root")
	mustRun(t, ext4Root, "run", "mm", "--kind", "dir", "--", "true")
	merged := overlayMount(t, base)
	root := filepath.Join(merged, "root")
	if out, err := exec.Command("cp", "-a", ext4Root, root).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	t.Cleanup(func() { cleanupRoot(t, root) })

	r := dindstore(t, root, "run", "mm", "--", "true")
	if r.code != 1 || !strings.Contains(r.stderr, "overlay2") || !strings.Contains(r.stderr, "vfs") {
		t.Fatalf("overlay2 cache on overlay: exit %d, %q; want 1 naming overlay2 and vfs", r.code, r.stderr)
	}
	t.Logf("refusal: %s", strings.TrimSpace(r.stderr))
	assertNothingLeft(t, root)
	if r := dindstore(t, root, "run", "v", "--kind", "vfs", "--", "sh", "-c", `test "$DOCKER_DRIVER" = vfs`); r.code != 0 {
		t.Fatalf("vfs cache on overlay: exit %d, %s", r.code, r.stderr)
	}
	if r := dindstore(t, root, "run", "v", "--", "dockerd", "--storage-driver", "overlay2"); r.code != 2 {
		t.Fatalf("dockerd asking for overlay2 on a vfs cache: exit %d, %s; want 2", r.code, r.stderr)
	}
	assertNothingLeft(t, root)
}

// overlayMount mounts an overlay in dir and returns its merged directory;
// it is unmounted at cleanup.
func overlayMount(t *testing.T, dir string) string {
	t.Helper()
	for _, d := range []string{"lower", "upper", "work", "merged"} {
		must(t, os.Mkdir(filepath.Join(dir, d), 0o700))
	}
	merged := filepath.Join(dir, "merged")
	opts := "lowerdir=" + dir + "/lower,upperdir=" + dir + "/upper,workdir=" + dir + "/work"
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		t.Skipf("skipping: cannot mount overlay: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(merged, unix.MNT_DETACH) })
	return merged
}
