package cache

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/dindstore/dindstore/internal/testutil"
	"github.com/dindstore/dindstore/volumes"
	"golang.org/x/sys/unix"
)

// acquire takes a lease and releases it at cleanup if the test did not.
func acquire(t *testing.T, r *Root, key string) *Lease {
	t.Helper()
	l, err := r.Acquire(context.Background(), key, ModeRun, []string{"test"}, AcquireOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Release(context.Background()) }) // a no-op once released
	return l
}

func TestLifecycleEachKind(t *testing.T) {
	testutil.RequiresRoot(t)
	testutil.RequiresTool(t, "mkfs.ext4")
	for _, kind := range []volumes.Kind{volumes.Loop, volumes.Dir, volumes.VFS} {
		t.Run(string(kind), func(t *testing.T) { lifecycle(t, kind) })
	}
}

func lifecycle(t *testing.T, kind volumes.Kind) {
	ctx := context.Background()
	r := newRoot(t)
	spec := Spec{Kind: kind, Size: 256 << 20}
	rec, created, err := r.Create(ctx, "k1", spec)
	if err != nil || !created || rec.Kind != kind {
		t.Fatalf("Create = %+v, %v, %v", rec, created, err)
	}
	if _, created, err := r.Create(ctx, "k1", spec); err != nil || created {
		t.Fatalf("second Create with the same options = %v, %v", created, err)
	}
	if _, _, err := r.Create(ctx, "k1", Spec{Kind: volumes.Loop, Size: 512 << 20}); kind == volumes.Loop && !errors.Is(err, ErrInvalid) {
		t.Fatalf("Create with another size: %v, want ErrInvalid", err)
	}
	l := acquire(t, r, "k1")
	if err := os.WriteFile(filepath.Join(l.MountPath(), "f"), []byte("kept"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Acquire(ctx, "k1", ModeRun, nil, AcquireOptions{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Acquire: %v, want ErrLocked", err)
	}
	if err := r.Remove(context.Background(), "k1"); !errors.Is(err, ErrLocked) {
		t.Fatalf("Remove in use: %v, want ErrLocked", err)
	}
	entries, err := r.List(ctx, ListOptions{})
	if err != nil || len(entries) != 1 || entries[0].State != StateInUse || entries[0].HolderPID != os.Getpid() {
		t.Fatalf("List in use = %+v, %v", entries, err)
	}
	if err := l.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	assertNothingMounted(t, r, "k1")
	l2 := acquire(t, r, "k1")
	if b, err := os.ReadFile(filepath.Join(l2.MountPath(), "f")); err != nil || string(b) != "kept" {
		t.Fatalf("data not kept: %q, %v", b, err)
	}
	if err := l2.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := r.Remove(context.Background(), "k1"); err != nil {
		t.Fatal(err)
	}
	assertNothingMounted(t, r, "k1")
	for _, d := range []string{"records", "images", "data", "mounts", "locks"} {
		if entries, _ := os.ReadDir(filepath.Join(r.Path(), d)); len(entries) > 0 && !(d == "locks" && entries[0].Name() == ".records" && len(entries) == 1) {
			t.Errorf("%s not empty after rm: %v", d, entries)
		}
	}
}

func assertNothingMounted(t *testing.T, r *Root, key string) {
	t.Helper()
	if m, _ := volumes.IsMounted(r.MountPath(key)); m {
		t.Errorf("%s still mounted", r.MountPath(key))
	}
	tag := volumes.LoopTag(TagPrefix, key)
	devs, _ := volumes.TaggedDevices(tag)
	for _, d := range devs {
		if d.Tag == tag {
			t.Errorf("loop device %s (%s) still attached", d.Path, d.Tag)
		}
	}
}

func TestGrowIdleLoop(t *testing.T) {
	testutil.RequiresRoot(t)
	testutil.RequiresTool(t, "resize2fs")
	ctx := context.Background()
	r := rootWith(t, "g", Spec{Kind: volumes.Loop, Size: 256 << 20})
	if err := r.Grow(ctx, "g", 128<<20); !errors.Is(err, volumes.ErrShrink) {
		t.Fatalf("shrink: %v", err)
	}
	if err := r.Grow(ctx, "g", 1<<30); err != nil {
		t.Fatal(err)
	}
	entries, _ := r.List(ctx, ListOptions{})
	if len(entries) != 1 || entries[0].CapBytes != 1<<30 || entries[0].ApparentBytes != 1<<30 {
		t.Fatalf("after grow: %+v", entries)
	}
}

func TestCreateTooBigLeavesNothing(t *testing.T) {
	testutil.RequiresRoot(t)
	r := newRoot(t)
	if _, _, err := r.Create(context.Background(), "big", Spec{Kind: volumes.Loop, Size: MaxSize}); !errors.Is(err, volumes.ErrInvalid) {
		t.Fatalf("Create 1 EiB: %v, want ErrInvalid", err)
	}
	for _, d := range subdirs {
		if entries, _ := os.ReadDir(filepath.Join(r.Path(), d)); len(entries) > 0 {
			t.Errorf("%s holds %v after a refused create", d, entries)
		}
	}
}

// TestAcquireRefusesSymlinks: a mount point or data dir swapped for a
// symlink is refused, and nothing is mounted through it.
func TestAcquireRefusesSymlinks(t *testing.T) {
	testutil.RequiresRoot(t)
	ctx := context.Background()
	r := rootWith(t, "s", Spec{Kind: volumes.Dir})
	outside := t.TempDir()
	for _, p := range []string{r.MountPath("s"), r.dataPath("s")} {
		saved := p + ".saved"
		if err := os.Rename(p, saved); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, p); err != nil {
			t.Fatal(err)
		}
		if l, err := r.Acquire(ctx, "s", ModeRun, nil, AcquireOptions{}); !errors.Is(err, ErrInvalid) {
			if err == nil {
				l.Release(context.Background())
			}
			t.Fatalf("Acquire with %s a symlink: %v, want ErrInvalid", p, err)
		}
		if m, _ := volumes.IsMounted(outside); m {
			t.Fatalf("mounted onto %s through a symlink", outside)
		}
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(saved, p); err != nil {
			t.Fatal(err)
		}
	}
	if held, _, _, _ := r.Holder("s"); held {
		t.Fatal("a refused Acquire kept the lock")
	}
}

// TestRemoveUnmountsBelowData: a mount left inside a dir cache's data (an
// inner daemon's, say) is unmounted by rm, never deleted through.
func TestRemoveUnmountsBelowData(t *testing.T) {
	testutil.RequiresRoot(t)
	r := rootWith(t, "d", Spec{Kind: volumes.Dir})
	sub := filepath.Join(r.dataPath("d"), "sub")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir()
	keep := filepath.Join(outside, "keep")
	if err := os.WriteFile(keep, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(outside, sub, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(sub, unix.MNT_DETACH) })
	if err := r.Remove(context.Background(), "d"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Fatalf("rm deleted through a mount inside the cache: %v", err)
	}
	if m, _ := volumes.IsMounted(sub); m {
		t.Fatal("mount inside the cache left behind")
	}
}

// TestGrowIdleXFS: xfs grows only mounted; an idle xfs cache is mounted
// for the grow under its lock and unmounted again.
func TestGrowIdleXFS(t *testing.T) {
	testutil.RequiresRoot(t)
	testutil.RequiresTool(t, "xfs_growfs")
	ctx := context.Background()
	r := rootWith(t, "x", Spec{Kind: volumes.Loop, FS: volumes.XFS, Size: 512 << 20})
	if err := r.Grow(ctx, "x", 1<<30); err != nil {
		t.Fatal(err)
	}
	assertNothingMounted(t, r, "x")
	st, err := volumes.ReadStats(r.imagePath("x"), volumes.XFS)
	if err != nil || st.SizeBytes < 1000<<20 {
		t.Fatalf("xfs after grow: %+v, %v", st, err)
	}
}
