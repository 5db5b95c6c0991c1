//go:build linux

package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dindstore/dindstore/internal/testutil"
	"github.com/dindstore/dindstore/volumes"
)

// btrfsHost mounts a fresh btrfs filesystem (a loop image of its own, by
// mount -o loop: autoclear) to stand for a reflink host disk; unmounted at
// cleanup, after what a test's roots left there.
func btrfsHost(t *testing.T, size int64) string {
	t.Helper()
	testutil.RequiresTool(t, "mkfs.btrfs")
	dir := t.TempDir()
	image, mnt := filepath.Join(dir, "host.img"), filepath.Join(dir, "host")
	must(t, os.Mkdir(mnt, 0o755))
	for _, args := range [][]string{{"truncate", "-s", fmt.Sprint(size), image}, {"mkfs.btrfs", "-q", image},
		{"mount", "-o", "loop", image, mnt}} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	t.Cleanup(func() {
		roots, _ := filepath.Glob(filepath.Join(mnt, "root*"))
		for _, r := range roots {
			cleanupRoot(t, r)
		}
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	return mnt
}

// TestClonesMountOnReflinkHosts: a reflinked clone changes the backing
// file's I/O alignment, and a direct-I/O loop device took its block size
// from it, so neither the clone nor its source mounted again (xfs: "device
// supports 4096 byte sectors", small ext4: "bad block size 1024"). On xfs
// and btrfs hosts, ext4 caches of 256 MiB (1 KiB blocks) and 20 GiB and an
// xfs cache of 1 GiB, once cloned: clone and source each run a dockerd and
// release cleanly, and repair says nothing is wrong.
func TestClonesMountOnReflinkHosts(t *testing.T) {
	requireSuite(t)
	hosts := map[string]func(t *testing.T) string{
		// Sparse hosts large enough to admit the 20 GiB cache.
		"xfs":   func(t *testing.T) string { return hostFS(t, 32<<30, volumes.XFS) },
		"btrfs": func(t *testing.T) string { return btrfsHost(t, 32<<30) },
	}
	caches := []struct{ fs, size string }{{"ext4", "256MiB"}, {"ext4", "20GiB"}, {"xfs", "1GiB"}}
	for name, host := range hosts {
		t.Run(name, func(t *testing.T) {
			mnt := host(t)
			for i, c := range caches {
				root := filepath.Join(mnt, fmt.Sprintf("root%d", i))
				mustRun(t, root, "run", "base", "--kind", "loop", "--fs", c.fs, "--size", c.size, "--",
					"sh", "-c", "echo base > {mount}/f")
				if r := dindstore(t, root, "clone", "base", "job"); r.code != 0 {
					t.Fatalf("%s %s: clone: exit %d: %s", c.fs, c.size, r.code, r.stderr)
				}
				for _, key := range []string{"job", "base"} {
					d := startDaemon(t, root, key, nil)
					if _, err := d.docker("info"); err != nil {
						t.Fatalf("%s %s cache %s: %v", c.fs, c.size, key, err)
					}
					if code := d.stop(); code != 0 {
						t.Fatalf("%s %s cache %s: the release exited %d:\n%s", c.fs, c.size, key, code, d.logs())
					}
					out := mustRun(t, root, "run", key, "--", "cat", "{mount}/f")
					if strings.TrimSpace(out) != "base" {
						t.Fatalf("%s %s cache %s: %q", c.fs, c.size, key, out)
					}
					mustRun(t, root, "repair", key)
				}
				assertNothingLeft(t, root)
			}
		})
	}
}
