package cache

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/dindstore/dindstore/internal/testutil"
	"github.com/dindstore/dindstore/loopdev"
	"github.com/dindstore/dindstore/volumes"
)

// hostXFS mounts a fresh xfs filesystem (reflink=1, mkfs.xfs's default) of
// size bytes to stand for a reflink host, and returns a root on it; all
// unmounted at cleanup.
func hostXFS(t *testing.T, size int64) *Root {
	t.Helper()
	testutil.RequiresRoot(t)
	testutil.RequiresTool(t, "mkfs.xfs")
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, "host.img"), filepath.Join(dir, "host")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := volumes.CreateImage(ctx, img, size, volumes.XFS); err != nil {
		t.Fatal(err)
	}
	if _, err := volumes.MountImage(ctx, img, mnt, volumes.XFS, loopdev.Tag("dindstore-test:host-", t.Name())); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = volumes.Unmount(mnt) })
	return newRootAt(t, filepath.Join(mnt, "root"))
}

// TestAdmitCountsSharedBlocksAsFree: on a reflink host a clone shares its
// source's blocks, and every one it writes is copied: what it may still
// take from the host is its cap minus the blocks it holds alone, not minus
// everything it maps.
func TestAdmitCountsSharedBlocksAsFree(t *testing.T) {
	r := hostXFS(t, 2<<30)
	ctx := context.Background()
	const capBytes = 512 << 20
	if _, _, err := r.Create(ctx, "base", Spec{Kind: volumes.Loop, Size: capBytes, FS: volumes.Ext4}); err != nil {
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
	res, err := r.Clone(ctx, "base", "job")
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
