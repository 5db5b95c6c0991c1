package volumes

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/dindstore/dindstore/internal/testutil"
	"github.com/dindstore/dindstore/loopdev"
	"golang.org/x/sys/unix"
)

// newImage creates an ext4 image of size bytes and a mount point for it.
func newImage(t *testing.T, size int64) (image, target string) {
	t.Helper()
	testutil.RequiresRoot(t)
	testutil.RequiresTool(t, "mkfs.ext4")
	dir := t.TempDir()
	image, target = filepath.Join(dir, "img"), filepath.Join(dir, "mnt")
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := CreateImage(context.Background(), image, size, Ext4); err != nil {
		t.Fatal(err)
	}
	return image, target
}

// mountImage mounts and registers an unmount that runs even on failure.
func mountImage(t *testing.T, image, target string) *Mounted {
	t.Helper()
	m, err := MountImage(context.Background(), image, target, Ext4, loopdev.Tag("dindstore-test:", t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Unmount(target) })
	return m
}

// fsBytes is the size of the filesystem mounted at target.
func fsBytes(t *testing.T, target string) int64 {
	t.Helper()
	var fs unix.Statfs_t
	if err := unix.Statfs(target, &fs); err != nil {
		t.Fatal(err)
	}
	return int64(fs.Blocks) * fs.Bsize
}

func TestImageSparseMountUnmount(t *testing.T) {
	image, target := newImage(t, 20<<30)
	if a := allocatedBytes(t, image); a > 16<<20 {
		t.Errorf("a fresh 20 GiB image allocates %d bytes on the host, want at most 16 MiB", a)
	}
	if _, err := os.Stat(image + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary image left behind: %v", err)
	}
	m := mountImage(t, image, target)
	var st unix.Stat_t
	if err := unix.Stat(target, &st); err != nil || st.Uid != 0 || st.Mode&0o022 != 0 {
		t.Errorf("mounted root dir: uid %d mode %o, err %v", st.Uid, st.Mode, err)
	}
	if err := os.WriteFile(filepath.Join(target, "f"), []byte("kept"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Unmount(target); err != nil {
		t.Fatal(err)
	}
	if found, _ := loopdev.FindByFile(image); len(found) != 0 {
		t.Fatalf("loop device %s left after unmount", m.Device)
	}
	mountImage(t, image, target)
	if b, err := os.ReadFile(filepath.Join(target, "f")); err != nil || string(b) != "kept" {
		t.Fatalf("data lost across remount: %q, %v", b, err)
	}
}

func TestGrowOnline(t *testing.T) {
	image, target := newImage(t, 256<<20)
	m := mountImage(t, image, target)
	ctx := context.Background()
	if !hasCapSysResource() {
		err := GrowMounted(ctx, openRW(t, image), 1<<30, Ext4, m.Device, target)
		if !errors.Is(err, ErrNotSupported) {
			t.Fatalf("online grow without CAP_SYS_RESOURCE: %v, want ErrNotSupported", err)
		}
		t.Skip("skipping the rest: this host's capability bounding set lacks CAP_SYS_RESOURCE, which online ext4 resize needs")
	}
	if err := GrowMounted(ctx, openRW(t, image), 128<<20, Ext4, m.Device, target); !errors.Is(err, ErrShrink) {
		t.Fatalf("shrink: %v, want ErrShrink", err)
	}
	if err := GrowMounted(ctx, openRW(t, image), 1<<30, Ext4, m.Device, target); err != nil {
		t.Fatal(err)
	}
	if total := fsBytes(t, target); total < 900<<20 {
		t.Fatalf("filesystem is %d bytes after growing to 1 GiB", total)
	}
}

func TestGrowOffline(t *testing.T) {
	image, target := newImage(t, 256<<20)
	ctx := context.Background()
	if err := GrowImage(ctx, openRW(t, image), 128<<20, Ext4); !errors.Is(err, ErrShrink) {
		t.Fatalf("shrink: %v, want ErrShrink", err)
	}
	if err := GrowImage(ctx, openRW(t, image), 1<<30, Ext4); err != nil {
		t.Fatal(err)
	}
	mountImage(t, image, target)
	if total := fsBytes(t, target); total < 900<<20 {
		t.Fatalf("filesystem is %d bytes after growing to 1 GiB", total)
	}
}

func TestCheckImageCorrupt(t *testing.T) {
	image, _ := newImage(t, 64<<20)
	f, err := os.OpenFile(image, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Overwrite the primary superblock (at byte 1024) with garbage.
	if _, err := f.WriteAt(make([]byte, 4096), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := CheckImage(context.Background(), image, Ext4); !errors.Is(err, ErrCheckFailed) {
		t.Fatalf("CheckImage on a wiped superblock: %v, want ErrCheckFailed", err)
	}
}

func TestCheckSparseSize(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := t.TempDir()
	if err := CheckSparseSize(dir, 100<<30); err != nil {
		t.Fatal(err)
	}
	if err := CheckSparseSize(dir, 1<<62); !errors.Is(err, ErrInvalid) {
		t.Fatalf("4 EiB: %v, want ErrInvalid", err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("probe left files: %v", left)
	}
}

func TestCheckDirRefusesTmpfs(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=16m"); err != nil {
		t.Skipf("skipping: cannot mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	if err := CheckDir(dir); !errors.Is(err, ErrNotSupported) {
		t.Fatalf("CheckDir on tmpfs: %v, want ErrNotSupported", err)
	}
}

func TestDecideOnHost(t *testing.T) {
	testutil.RequiresRoot(t)
	d := Decide(t.TempDir())
	if d.Kind != Loop {
		t.Logf("auto chose %s here: %v", d.Kind, d.Why)
	}
	if d.Kind == "" || d.Kind == Auto {
		t.Fatalf("Decide gave %q", d.Kind)
	}
}

func TestXFSImage(t *testing.T) {
	testutil.RequiresRoot(t)
	testutil.RequiresTool(t, "mkfs.xfs")
	testutil.RequiresTool(t, "xfs_growfs")
	dir := t.TempDir()
	image, target := filepath.Join(dir, "img"), filepath.Join(dir, "mnt")
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := CreateImage(ctx, image, 100<<20, XFS); !errors.Is(err, ErrInvalid) {
		t.Fatalf("100 MiB xfs: %v, want ErrInvalid", err)
	}
	if err := CreateImage(ctx, image, 1<<30, XFS); err != nil {
		t.Fatal(err)
	}
	m, err := MountImage(ctx, image, target, XFS, loopdev.Tag("dindstore-test:", t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Unmount(target) })
	if err := CheckDir(target); err != nil {
		t.Fatalf("overlay on the xfs image: %v", err)
	}
	if err := GrowMounted(ctx, openRW(t, image), 2<<30, XFS, m.Device, target); err != nil {
		t.Fatal(err)
	}
	if total := fsBytes(t, target); total < 1900<<20 {
		t.Fatalf("xfs is %d bytes after growing to 2 GiB", total)
	}
}

// TestUnmountBusyStays: a mount still in use is not detached lazily; it
// stays mounted and the error says so.
func TestUnmountBusyStays(t *testing.T) {
	image, target := newImage(t, 64<<20)
	mountImage(t, image, target)
	f, err := os.Create(filepath.Join(target, "open"))
	if err != nil {
		t.Fatal(err)
	}
	if err := Unmount(target); err == nil || !errors.Is(err, unix.EBUSY) {
		t.Fatalf("unmount while a file is open: %v, want EBUSY", err)
	}
	if m, _ := IsMounted(target); !m {
		t.Fatal("a busy mount was detached")
	}
	f.Close()
	if err := Unmount(target); err != nil {
		t.Fatal(err)
	}
	if found, _ := loopdev.FindByFile(image); len(found) != 0 {
		t.Fatal("loop device left after unmount")
	}
}

func TestReadStats(t *testing.T) {
	image, target := newImage(t, 256<<20)
	st, err := ReadStats(image, Ext4)
	if err != nil || st.SizeBytes != 256<<20 || st.UsedBytes <= 0 || st.Inodes == 0 || st.InodesFree >= st.Inodes {
		t.Fatalf("ReadStats = %+v, %v", st, err)
	}
	if err := GrowImage(context.Background(), openRW(t, image), 1<<30, Ext4); err != nil {
		t.Fatal(err)
	}
	if st, err := ReadStats(image, Ext4); err != nil || st.SizeBytes != 1<<30 {
		t.Fatalf("ReadStats after grow = %+v, %v", st, err)
	}
	if _, err := ReadStats(image, XFS); !errors.Is(err, ErrCheckFailed) {
		t.Fatalf("ext4 read as xfs: %v", err)
	}
	// After an unmount the superblock agrees with statfs while mounted, but
	// for the metadata (journal, tables) that statfs leaves out of its count.
	mountImage(t, image, target)
	if err := os.WriteFile(filepath.Join(target, "f"), make([]byte, 8<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(target, &fs); err != nil {
		t.Fatal(err)
	}
	want := int64(fs.Blocks-fs.Bfree) * fs.Bsize
	if err := Unmount(target); err != nil {
		t.Fatal(err)
	}
	if st, err := ReadStats(image, Ext4); err != nil || st.UsedBytes < want || st.InodesFree != fs.Ffree {
		t.Fatalf("after unmount: %+v, %v; statfs said used %d, free inodes %d", st, err, want, fs.Ffree)
	}
}

// TestUnmountGivesBackJustDeleted: data deleted just before the unmount
// (no sync in between) goes back to the host too.
func TestUnmountGivesBackJustDeleted(t *testing.T) {
	image, target := newImage(t, 512<<20)
	mountImage(t, image, target)
	p := filepath.Join(target, "blob")
	if err := os.WriteFile(p, make([]byte, 64<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	unix.Sync()
	if a := allocatedBytes(t, image); a < 64<<20 {
		t.Fatalf("only %d bytes allocated after writing 64 MiB", a)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := Unmount(target); err != nil {
		t.Fatal(err)
	}
	if a := allocatedBytes(t, image); a > 8<<20 {
		t.Fatalf("%d bytes still allocated after deleting and unmounting", a)
	}
}

// openRW opens an image read-write for the grow functions, closed at the
// test's end.
func openRW(t *testing.T, image string) *os.File {
	t.Helper()
	f, err := os.OpenFile(image, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestAttachLeavesBackingLockFree: the loop device keeps a reference to the
// file it was given, so a lock taken on the caller's Backing must not be
// the device's: once the caller closes it (a holder that dies with its
// cache mounted on purpose, a CSI plugin restarted under its pods), the
// next process takes the image's lock while the device stays bound.
func TestAttachLeavesBackingLockFree(t *testing.T) {
	image, target := newImage(t, 64<<20)
	backing := openRW(t, image)
	if err := unix.Flock(int(backing.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	_, err := MountImageWith(context.Background(), image, target, Ext4, loopdev.Tag("dindstore-test:", t.Name()),
		MountOptions{Backing: backing})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Unmount(target) })
	backing.Close()
	again := openRW(t, image)
	if err := unix.Flock(int(again.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatalf("the image's lock outlived its holder's descriptor (the loop device holds it): %v", err)
	}
}
