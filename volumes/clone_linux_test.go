package volumes

import (
	"context"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/dindstore/dindstore/internal/testutil"
	"github.com/dindstore/dindstore/loopdev"
)

// hostFS mounts a fresh filesystem of kind fs (a loop image of its own) to
// stand for the host filesystem a root lives on; unmounted at cleanup.
func hostFS(t testing.TB, fs FS, size int64) string {
	t.Helper()
	testutil.RequiresRoot(t)
	testutil.RequiresTool(t, "mkfs."+string(fs))
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, "host.img"), filepath.Join(dir, "host")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := CreateImage(context.Background(), img, size, fs); err != nil {
		t.Fatal(err)
	}
	if _, err := MountImage(context.Background(), img, mnt, fs, loopdev.Tag("dindstore-test:host-", string(fs))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Unmount(mnt) })
	return mnt
}

// filledImage makes an ext4 cache image in dir with 24 MiB of data in it.
func filledImage(t *testing.T, dir string) string {
	t.Helper()
	img, mnt := filepath.Join(dir, "src.img"), filepath.Join(dir, "src-mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := CreateImage(context.Background(), img, 512<<20, Ext4); err != nil {
		t.Fatal(err)
	}
	mountImage(t, img, mnt)
	data := make([]byte, 24<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := os.WriteFile(filepath.Join(mnt, "blob"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Unmount(mnt); err != nil {
		t.Fatal(err)
	}
	return img
}

func sum(t *testing.T, p string) [32]byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

// TestCloneReflinkAndSparse: on xfs (reflink=1) a clone is a reflink, on
// ext4 a sparse copy; both are byte-identical and stay sparse.
func TestCloneReflinkAndSparse(t *testing.T) {
	for _, c := range []struct {
		host FS
		want CloneMethod
	}{{XFS, CloneReflink}, {Ext4, CloneSparseCopy}} {
		t.Run(string(c.host), func(t *testing.T) {
			host := hostFS(t, c.host, 1<<30)
			src := filledImage(t, host)
			dst := filepath.Join(host, "clone.img")
			method, err := CloneFile(dst, src)
			if err != nil || method != c.want {
				t.Fatalf("CloneFile = %s, %v; want %s", method, err, c.want)
			}
			if sum(t, src) != sum(t, dst) {
				t.Fatal("the clone differs from its source")
			}
			if a, b := allocatedBytes(t, dst), allocatedBytes(t, src); a > b+(1<<20) {
				t.Fatalf("the clone allocates %d bytes, its source %d: not sparse", a, b)
			}
			if _, err := CloneFile(dst, src); err == nil {
				t.Fatal("cloned onto an existing file")
			}
		})
	}
}

// TestXFSCloneMountsBesideSource: an xfs clone (same UUID) mounts while its
// source is mounted.
func TestXFSCloneMountsBesideSource(t *testing.T) {
	testutil.RequiresRoot(t)
	testutil.RequiresTool(t, "mkfs.xfs")
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src.img"), filepath.Join(dir, "dst.img")
	ctx := context.Background()
	if err := CreateImage(ctx, src, 512<<20, XFS); err != nil {
		t.Fatal(err)
	}
	if _, err := CloneFile(dst, src); err != nil {
		t.Fatal(err)
	}
	for _, img := range []string{src, dst} {
		mnt := img + ".mnt"
		if err := os.Mkdir(mnt, 0o700); err != nil {
			t.Fatal(err)
		}
		if _, err := MountImage(ctx, img, mnt, XFS, loopdev.Tag("dindstore-test:", filepath.Base(img))); err != nil {
			t.Fatalf("mount %s beside its twin: %v", img, err)
		}
		t.Cleanup(func() { _ = Unmount(mnt) })
	}
}
