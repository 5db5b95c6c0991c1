package cache

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/dindstore/dindstore/internal/testutil"
	"github.com/dindstore/dindstore/loopdev"
	"github.com/dindstore/dindstore/volumes"
	"golang.org/x/sys/unix"
)

// hostXFS mounts a fresh xfs filesystem (reflink=1, mkfs.xfs's default) of
// size bytes to stand for a reflink host, and returns a root on it; all
// unmounted at cleanup.
func hostXFS(t *testing.T, size int64) *Root { return hostRoot(t, size, volumes.XFS) }

// hostRoot mounts a fresh filesystem fs of size bytes to stand for the
// host, and returns a root on it; all unmounted at cleanup.
func hostRoot(t *testing.T, size int64, fs volumes.FS) *Root {
	t.Helper()
	testutil.RequiresRoot(t)
	testutil.RequiresTool(t, "mkfs."+string(fs))
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, "host.img"), filepath.Join(dir, "host")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := volumes.CreateImage(ctx, img, size, fs); err != nil {
		t.Fatal(err)
	}
	if _, err := volumes.MountImage(ctx, img, mnt, fs, loopdev.Tag("dindstore-test:host-", t.Name())); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = volumes.Unmount(mnt) })
	return newRootAt(t, filepath.Join(mnt, "root"))
}

// warmBase makes the cache "base" (512 MiB cap) holding 300 MiB of data.
func warmBase(t *testing.T, r *Root) {
	t.Helper()
	ctx := context.Background()
	if _, _, err := r.Create(ctx, "base", Spec{Kind: volumes.Loop, Size: 512 << 20, FS: volumes.Ext4}); err != nil {
		t.Fatal(err)
	}
	l := acquire(t, r, "base")
	data := make([]byte, 300<<20)
	for i := range data {
		data[i] = byte(i*7 + i>>12)
	}
	if err := os.WriteFile(filepath.Join(l.MountPath(), "blob"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestCloneNeedsRoom: a clone that must copy (no reflink on the host) is
// refused (ErrNoRoom) before it writes when the copy would take the host
// below its keep-free floor, and leaves nothing; a reflink clone on the
// same tight host is made (it writes nothing yet).
func TestCloneNeedsRoom(t *testing.T) {
	for _, fs := range []volumes.FS{volumes.Ext4, volumes.XFS} {
		t.Run(string(fs), func(t *testing.T) {
			r := hostRoot(t, 1<<30, fs)
			warmBase(t, r)
			_, need, _, err := fileSizes(r.imagePath("base"))
			if err != nil {
				t.Fatal(err)
			}
			room, err := r.Room(0)
			if err != nil {
				t.Fatal(err)
			}
			fillTo(t, filepath.Join(r.Path(), "..", "filler"), room.FreeBytes-need-room.FloorBytes/2)
			res, err := r.Clone(context.Background(), "base", "job")
			if fs == volumes.XFS {
				if err != nil || res.Method != volumes.CloneReflink {
					t.Fatalf("a reflink clone on a tight host: %+v %v", res, err)
				}
				return
			}
			if !errors.Is(err, ErrNoRoom) {
				t.Fatalf("a copy of %d bytes leaving the host under its floor: %+v %v", need, res, err)
			}
			if r.Exists("job") || fileExists(r.imagePath("job")) || fileExists(r.imagePath("job")+".tmp") {
				t.Error("the refused clone left something")
			}
		})
	}
}

// fillTo writes a file of size bytes at path (allocated, not sparse).
func fillTo(t *testing.T, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
		t.Fatal(err)
	}
}

func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// TestAdmitCountsSharedBlocksAsFree: on a reflink host a clone shares its
// source's blocks, and every one it writes is copied: what it may still
// take from the host is its cap minus the blocks it holds alone, not minus
// everything it maps.
func TestAdmitCountsSharedBlocksAsFree(t *testing.T) {
	r := hostXFS(t, 2<<30)
	const capBytes = 512 << 20
	warmBase(t, r)
	res, err := r.Clone(context.Background(), "base", "job")
	if err != nil {
		t.Fatal(err)
	}
	if res.Method != volumes.CloneReflink {
		t.Skip("the clone was not a reflink on this xfs host")
	}
	room, err := r.Room(0, "job")
	if err != nil {
		t.Fatal(err)
	}
	if room.CommittedBytes < capBytes-32<<20 {
		t.Fatalf("a fresh reflinked clone of a 512 MiB cache may still take %d bytes, counted as %d", capBytes,
			room.CommittedBytes)
	}
}
