package cache

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dindstore/dindstore/internal/testutil"
	"github.com/dindstore/dindstore/volumes"
)

// crash simulates a holder killed with SIGKILL: the kernel drops its lock,
// but its mount, loop device and owner record stay.
func crash(t *testing.T, l *Lease) {
	t.Helper()
	l.released = true    // the cleanup of acquire() must not release it properly
	l.mount.CloseWatch() // a dead process's descriptors are closed
	l.closeImage()
	if err := l.lock.release(); err != nil {
		t.Fatal(err)
	}
}

func findingsOf(fs []Finding, what string) []Finding {
	var out []Finding
	for _, f := range fs {
		if f.What == what {
			out = append(out, f)
		}
	}
	return out
}

func TestRecoverAfterCrash(t *testing.T) {
	testutil.RequiresRoot(t)
	testutil.RequiresTool(t, "mkfs.ext4")
	ctx := context.Background()
	r := newRoot(t)
	t.Cleanup(func() { _ = volumes.Unmount(r.MountPath("c")) })
	if _, _, err := r.Create(ctx, "c", Spec{Kind: volumes.Loop, Size: 128 << 20}); err != nil {
		t.Fatal(err)
	}
	l := acquire(t, r, "c")
	if err := os.WriteFile(filepath.Join(l.MountPath(), "f"), []byte("kept"), 0o600); err != nil {
		t.Fatal(err)
	}
	crash(t, l)

	dry, err := r.Recover(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(findingsOf(dry, FindStaleMount)) != 1 || len(findingsOf(dry, FindStaleOwner)) != 1 {
		t.Fatalf("dry run findings: %+v", dry)
	}
	for _, f := range dry {
		if !strings.HasPrefix(f.Action, "would be ") {
			t.Errorf("a dry run says %q was done: %+v", f.Action, f)
		}
	}
	if m, _ := volumes.IsMounted(r.MountPath("c")); !m {
		t.Fatal("a dry run unmounted")
	}
	got, err := r.Recover(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range got {
		if f.Err != nil {
			t.Errorf("repair failed: %+v", f)
		}
	}
	assertNothingMounted(t, r, "c")
	if _, err := os.Lstat(r.ownerPath("c")); !os.IsNotExist(err) {
		t.Error("stale owner record kept")
	}
	l2 := acquire(t, r, "c")
	if b, err := os.ReadFile(filepath.Join(l2.MountPath(), "f")); err != nil || string(b) != "kept" {
		t.Fatalf("data after recovery: %q, %v", b, err)
	}
}

func TestRecoverKeepsLiveHolder(t *testing.T) {
	testutil.RequiresRoot(t)
	r := rootWith(t, "live", Spec{Kind: volumes.Dir})
	acquire(t, r, "live")
	got, err := r.Recover(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].What != FindInUse || got[0].Action != "kept" {
		t.Fatalf("findings: %+v", got)
	}
	if m, _ := volumes.IsMounted(r.MountPath("live")); !m {
		t.Fatal("recover unmounted a live holder's cache")
	}
}

func TestRecoverHalfCreated(t *testing.T) {
	testutil.RequiresRoot(t)
	r := newRoot(t)
	for _, p := range []string{r.imagePath("half") + ".tmp", r.imagePath("half2")} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(r.dataPath("half3"), 0o700); err != nil {
		t.Fatal(err)
	}
	got, err := r.Recover(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(findingsOf(got, FindHalfCreated)); n != 3 {
		t.Fatalf("half-created findings: %d, want 3: %+v", n, got)
	}
	for _, d := range []string{"images", "data", "locks"} {
		entries, _ := os.ReadDir(filepath.Join(r.Path(), d))
		for _, e := range entries {
			if e.Name() != ".records" {
				t.Errorf("left in %s: %s", d, e.Name())
			}
		}
	}
	if devs, _ := volumes.TaggedDevices(TagPrefix + "half"); len(devs) > 0 {
		t.Errorf("loop devices: %v", devs)
	}
}

// TestGCStrayLoop: a dindstore loop device whose image file is gone (here:
// unlinked while mounted below the root) is unmounted and detached by gc.
func TestGCStrayLoop(t *testing.T) {
	testutil.RequiresRoot(t)
	testutil.RequiresTool(t, "mkfs.ext4")
	ctx := context.Background()
	r := newRoot(t)
	image, target := r.imagePath("stray"), filepath.Join(r.tmpDir(), "stray-mnt") // no cache's mount point
	if err := volumes.CreateImage(ctx, image, 64<<20, volumes.Ext4); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	m, err := volumes.MountImage(ctx, image, target, volumes.Ext4, volumes.LoopTag(TagPrefix, "stray"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = volumes.Unmount(target) })
	if err := os.Remove(image); err != nil {
		t.Fatal(err)
	}
	got, err := r.GC(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if strays := findingsOf(got, FindStrayLoop); len(strays) != 1 || strays[0].Err != nil {
		t.Fatalf("gc findings: %+v", got)
	}
	if mounted, _ := volumes.IsMounted(target); mounted {
		t.Fatal("the stray device is still mounted")
	}
	if devs, _ := volumes.TaggedDevices(volumes.LoopTag(TagPrefix, "stray")); len(devs) > 0 {
		t.Fatalf("the stray device %s is still attached", m.Device)
	}
}
