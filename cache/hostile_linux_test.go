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

// TestHostileRecords: a FIFO, a file of another user, or a symlink where a
// record should be is refused at once (no hang, no read outside the root).
func TestHostileRecords(t *testing.T) {
	testutil.RequiresRoot(t)
	r := newRoot(t)
	if err := unix.Mkfifo(r.recordPath("fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	foreign := r.recordPath("foreign")
	if err := os.WriteFile(foreign, []byte(`{"key":"foreign","kind":"dir"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(foreign, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "x.json")
	if err := os.WriteFile(outside, []byte(`{"key":"link","kind":"dir"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, r.recordPath("link")); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"fifo", "foreign", "link"} {
		if _, err := r.readRecord(key); !errors.Is(err, ErrCorruptRecord) {
			t.Errorf("record %s: %v, want ErrCorruptRecord", key, err)
		}
	}
}

// TestHostileLockFiles: a lock file replaced by a symlink, a FIFO or a file
// of another user is refused, and the link's target is not touched.
func TestHostileLockFiles(t *testing.T) {
	testutil.RequiresRoot(t)
	r := newRoot(t)
	outside := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(outside, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, r.lockPath("link")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(r.lockPath("fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(r.lockPath("foreign"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(r.lockPath("foreign"), 1000, 1000); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"link", "fifo", "foreign"} {
		if l, err := r.tryLock(key); !errors.Is(err, ErrInvalid) {
			if err == nil {
				l.release()
			}
			t.Errorf("lock %s: %v, want ErrInvalid", key, err)
		}
	}
	if b, _ := os.ReadFile(outside); string(b) != "keep" {
		t.Fatal("the symlink's target was changed")
	}
}

// TestHostileImage: an image swapped for a symlink to another image, or
// for a file of another user, is never attached.
func TestHostileImage(t *testing.T) {
	testutil.RequiresRoot(t)
	testutil.RequiresTool(t, "mkfs.ext4")
	ctx := context.Background()
	r := rootWith(t, "img", Spec{Kind: volumes.Loop, Size: 64 << 20})
	image := r.imagePath("img")
	outside := filepath.Join(t.TempDir(), "other.img")
	if err := os.Rename(image, outside); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, image); err != nil {
		t.Fatal(err)
	}
	if l, err := r.Acquire(ctx, "img", ModeRun, nil, AcquireOptions{}); !errors.Is(err, ErrInvalid) {
		if err == nil {
			l.Release(context.Background())
		}
		t.Fatalf("Acquire through a symlinked image: %v, want ErrInvalid", err)
	}
	if found, _ := volumes.ImageDevices(outside); len(found) > 0 {
		t.Fatal("attached the symlink's target")
	}
	if err := os.Remove(image); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(outside, image); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(image, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	if l, err := r.Acquire(ctx, "img", ModeRun, nil, AcquireOptions{}); !errors.Is(err, ErrInvalid) {
		if err == nil {
			l.Release(context.Background())
		}
		t.Fatalf("Acquire of a foreign image: %v, want ErrInvalid", err)
	}
}
