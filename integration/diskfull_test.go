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
	return hostFS(t, size, volumes.Ext4)
}

// hostFS mounts a sparse filesystem of the kind (xfs with reflink on) to
// stand for a host disk, and returns its mount point; what a test's root
// left there, and the filesystem itself, are unmounted at cleanup.
func hostFS(tb testing.TB, size int64, fs volumes.FS) string {
	tb.Helper()
	dir := tb.TempDir()
	image, mnt := filepath.Join(dir, "host.img"), filepath.Join(dir, "host")
	must(tb, os.Mkdir(mnt, 0o755))
	ctx := context.Background()
	must(tb, volumes.CreateImage(ctx, image, size, fs))
	if _, err := volumes.MountImage(ctx, image, mnt, fs, "dindstore-test:hostfs"); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		cleanupRoot(tb, filepath.Join(mnt, "root"))
		if err := volumes.Unmount(mnt); err != nil {
			tb.Error(err)
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
	mustRun(t, root, "run", "other", "--kind", "loop", "--size", "1GiB", "--overcommit", "--", "sh", "-c", "echo precious > {mount}/f")
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
	if out := mustRun(t, root, "run", "other", "--overcommit", "--", "cat", "{mount}/f"); strings.TrimSpace(out) != "precious" {
		t.Fatalf("the other cache lost its data: %q", out)
	}
	assertNothingLeft(t, root)
}

// TestAdmissionAndDamage: two 256 MiB caches on a 320 MiB host filesystem.
// With one in use, the other is refused at admission (76) with the figures;
// with --overcommit both fill, the host runs out under the sparse images,
// and the release of the one that lost writes fails (74) even though its
// command exited 0: the cache is marked damaged and refused until repair.
func TestAdmissionAndDamage(t *testing.T) {
	requireSuite(t)
	host := smallHostFS(t, 320<<20)
	root := filepath.Join(host, "root")
	for _, k := range []string{"it-a", "it-b"} {
		r := dindstore(t, root, "create", k, "--kind", "loop", "--size", "256MiB")
		if r.code != 0 {
			t.Fatalf("create %s: exit %d, %s", k, r.code, r.stderr)
		}
		if k == "it-b" && !strings.Contains(r.stderr, "exceed the host filesystem") {
			t.Errorf("create does not warn that the caps exceed the host: %q", r.stderr)
		}
	}
	_, stop := holdInBackground(t, root, "it-a", "true")
	r := dindstore(t, root, "run", "it-b", "--", "true")
	if r.code != 76 || !strings.Contains(r.stderr, "not admitted") || !strings.Contains(r.stderr, "--overcommit") {
		t.Fatalf("run of a cache that does not fit: exit %d, %q; want 76 with the figures and the way out", r.code, r.stderr)
	}
	t.Logf("refusal: %s", strings.TrimSpace(r.stderr))
	stop()
	// Fill both: a first (it fits), then b, which the host cannot hold.
	fillCmd := "dd if=/dev/zero of={mount}/fill bs=1M count=200 2>/dev/null; true"
	if r := dindstore(t, root, "run", "it-a", "--overcommit", "--", "sh", "-c", fillCmd); r.code != 0 {
		t.Fatalf("filling a: exit %d, %s", r.code, r.stderr)
	}
	r = dindstore(t, root, "run", "it-b", "--overcommit", "--", "sh", "-c", fillCmd)
	if r.code != 74 || !strings.Contains(r.stderr, "damaged") {
		t.Fatalf("run that lost writes to a full host: exit %d, %q; want 74 and damaged", r.code, r.stderr)
	}
	t.Logf("damage: %s", strings.TrimSpace(r.stderr))
	if st := listJSON(t, root)["it-b"].State; st != "damaged" {
		t.Errorf("ls calls the damaged cache %q", st)
	}
	r = dindstore(t, root, "run", "it-b", "--", "true")
	if r.code != 74 || !strings.Contains(r.stderr, "dindstore repair") {
		t.Errorf("run of a damaged cache: exit %d, %q; want 74 naming repair", r.code, r.stderr)
	}
	// prune never touches a damaged cache; it makes room by removing a.
	mustRun(t, root, "prune", "--max-count", "0")
	if l := listJSON(t, root); l["it-b"].State != "damaged" || len(l) != 1 {
		t.Fatalf("after prune --max-count 0: %+v; want the damaged it-b alone", l)
	}
	if r := dindstore(t, root, "repair", "it-b"); r.code != 0 {
		t.Fatalf("repair: exit %d, %s %s", r.code, r.stdout, r.stderr)
	}
	if st := listJSON(t, root)["it-b"].State; st != "idle" {
		t.Errorf("after repair, ls says %q", st)
	}
	assertNothingLeft(t, root)
}
