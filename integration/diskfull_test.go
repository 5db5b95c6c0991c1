//go:build linux

package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dindstore/dindstore/volumes"
	"golang.org/x/sys/unix"
)

// smallHostFS mounts a small ext4 filesystem (a loop image of its own) to
// stand for a host disk, and returns its mount point; it is unmounted and
// detached at cleanup.
func smallHostFS(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	image, mnt := filepath.Join(dir, "host.img"), filepath.Join(dir, "host")
	must(t, os.Mkdir(mnt, 0o755))
	ctx := context.Background()
	must(t, volumes.CreateImage(ctx, image, size, volumes.Ext4))
	if _, err := volumes.MountImage(ctx, image, mnt, volumes.Ext4, "dindstore-test:hostfs"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cleanupRoot(t, filepath.Join(mnt, "root"))
		if err := volumes.Unmount(mnt); err != nil {
			t.Error(err)
		}
	})
	return mnt
}

// fill allocates a file until the filesystem at dir has at most leave bytes
// free, or no block can be had.
func fill(t *testing.T, dir string, leave int64) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	must(t, err)
	defer f.Close()
	off, chunk := int64(0), int64(1<<20)
	for chunk >= 4096 {
		var st unix.Statfs_t
		must(t, unix.Statfs(dir, &st))
		if int64(st.Bfree)*st.Bsize <= leave {
			return
		}
		if err := unix.Fallocate(int(f.Fd()), 0, off, chunk); err != nil {
			chunk /= 2
			continue
		}
		off += chunk
	}
}

// TestHostDiskFull: with the host filesystem full, create and grow fail with
// a clear error, leave nothing half-made, and another cache keeps its data.
func TestHostDiskFull(t *testing.T) {
	requireSuite(t)
	host := smallHostFS(t, 64<<20)
	root := filepath.Join(host, "root")
	mustRun(t, root, "run", "other", "--kind", "loop", "--size", "1GiB", "--", "sh", "-c", "echo precious > {mount}/f")
	fill(t, host, 48<<10)

	r := dindstore(t, root, "create", "victim", "--kind", "loop", "--size", "1GiB")
	if r.code != 1 || !strings.Contains(strings.ToLower(r.stderr), "no space left") {
		t.Errorf("create on a full disk: exit %d, %q; want 1 and the cause", r.code, r.stderr)
	}
	r = dindstore(t, root, "grow", "other", "--size", "64GiB")
	if r.code != 1 {
		t.Errorf("grow on a full disk: exit %d, %q; want 1", r.code, r.stderr)
	}
	t.Logf("grow on a full disk: %s", strings.TrimSpace(r.stderr))
	if left, _ := filepath.Glob(filepath.Join(root, "*", "victim*")); len(left) > 0 {
		t.Errorf("a failed create left %v", left)
	}
	if out := dindstore(t, root, "recover", "--json"); compactJSON(out.stdout) != "[]" {
		t.Errorf("recover after the failures found: %s", out.stdout)
	}
	must(t, os.Remove(filepath.Join(host, "filler")))
	if out := mustRun(t, root, "run", "other", "--", "cat", "{mount}/f"); strings.TrimSpace(out) != "precious" {
		t.Fatalf("the other cache lost its data: %q", out)
	}
	assertNothingLeft(t, root)
}
