package loopdev

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dindstore/dindstore/internal/testutil"
	"golang.org/x/sys/unix"
)

// sparseFile makes a sparse file of size bytes in the test's temp dir.
func sparseFile(t *testing.T, name string, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return p
}

// attach attaches and registers a cleanup that detaches even on failure.
func attach(t *testing.T, file string, p Params) *Device {
	t.Helper()
	dev, err := Attach(file, p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	return dev
}

func TestAttachDetach(t *testing.T) {
	testutil.RequiresRoot(t)
	file := sparseFile(t, "img", 64<<20)
	tag := Tag("dindstore-test:", t.Name())
	info := attach(t, file, Params{DirectIO: true, Tag: tag})
	if !info.Autoclear {
		t.Error("autoclear not set")
	}
	if info.Tag != tag {
		t.Errorf("tag %q, want %q", info.Tag, tag)
	}
	t.Logf("attached %s, direct I/O effective: %v", info.Path, info.DirectIO)

	found, err := FindByFile(file)
	if err != nil || len(found) != 1 || found[0].Path != info.Path {
		t.Fatalf("FindByFile = %v, %v; want %s", found, err, info.Path)
	}
	tagged, err := ListTagged(tag)
	if err != nil || len(tagged) != 1 {
		t.Fatalf("ListTagged = %v, %v", tagged, err)
	}
	if err := Detach(info.Path); err != nil {
		t.Fatal(err)
	}
	info.Close()
	if err := WaitDetached(info.Path, info.BackingDev, info.BackingInode, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if found, _ := FindByFile(file); len(found) != 0 {
		t.Fatalf("still attached after detach: %v", found)
	}
}

func TestAttachRefusesNonRegular(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := t.TempDir()
	if _, err := Attach(dir, Params{}); err == nil {
		t.Fatal("attached a directory")
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(sparseFile(t, "img", 1<<20), link); err != nil {
		t.Fatal(err)
	}
	if _, err := Attach(link, Params{}); err == nil {
		t.Fatal("followed a symlink")
	}
}

// TestAttachConcurrent attaches 32 files at once from 32 goroutines: all
// must succeed on distinct devices, and none may be left after detach.
func TestAttachConcurrent(t *testing.T) {
	testutil.RequiresRoot(t)
	const n = 32
	files := make([]string, n)
	for i := range files {
		files[i] = sparseFile(t, fmt.Sprintf("img%d", i), 16<<20)
	}
	infos := make([]*Device, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range files {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			infos[i], errs[i] = Attach(files[i], Params{Tag: Tag("dindstore-test:", fmt.Sprint(i))})
		}(i)
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := range files {
		if errs[i] != nil {
			t.Errorf("attach %d: %v", i, errs[i])
			continue
		}
		t.Cleanup(func() { infos[i].Close() })
		if seen[infos[i].Path] {
			t.Errorf("device %s handed out twice", infos[i].Path)
		}
		seen[infos[i].Path] = true
	}
	for i := range files {
		if infos[i] == nil {
			continue
		}
		if err := Detach(infos[i].Path); err != nil {
			t.Error(err)
		}
		infos[i].Close()
		_ = WaitDetached(infos[i].Path, infos[i].BackingDev, infos[i].BackingInode, 5*time.Second)
		if found, _ := FindByFile(files[i]); len(found) != 0 {
			t.Errorf("%s still attached: %v", files[i], found)
		}
	}
}

// TestAttachLegacyFallback drives the pre-5.8 path (LOOP_SET_FD and
// LOOP_SET_STATUS64) on this kernel, by making LOOP_CONFIGURE answer ENOTTY
// as an old kernel would.
func TestAttachLegacyFallback(t *testing.T) {
	testutil.RequiresRoot(t)
	loopConfigure = func(int, *unix.LoopConfig) error { return unix.ENOTTY }
	t.Cleanup(func() { loopConfigure = unix.IoctlLoopConfigure })
	file := sparseFile(t, "img", 16<<20)
	tag := Tag("dindstore-test:", t.Name())
	dev := attach(t, file, Params{DirectIO: true, Tag: tag})
	if !dev.Autoclear || dev.Tag != tag {
		t.Fatalf("legacy attach: autoclear %v, tag %q", dev.Autoclear, dev.Tag)
	}
	if found, _ := FindByFile(file); len(found) != 1 {
		t.Fatalf("legacy attach not found by file: %v", found)
	}
	dev.Close() // no user: autoclear detaches it
	if err := WaitDetached(dev.Path, dev.BackingDev, dev.BackingInode, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestDetachIfBacked never detaches a device bound to another file.
func TestDetachIfBacked(t *testing.T) {
	testutil.RequiresRoot(t)
	file := sparseFile(t, "img", 16<<20)
	dev := attach(t, file, Params{Tag: Tag("dindstore-test:", t.Name())})
	if err := DetachIfBacked(dev.Path, dev.BackingDev, dev.BackingInode+1); err != nil {
		t.Fatal(err)
	}
	if found, _ := FindByFile(file); len(found) != 1 {
		t.Fatal("detached a device whose backing inode did not match")
	}
	if err := DetachIfBacked(dev.Path, dev.BackingDev, dev.BackingInode); err != nil {
		t.Fatal(err)
	}
	dev.Close()
	if err := WaitDetached(dev.Path, dev.BackingDev, dev.BackingInode, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}
