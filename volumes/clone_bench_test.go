//go:build linux

package volumes

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/dindstore/dindstore/internal/testutil"
	"golang.org/x/sys/unix"
)

// BenchmarkClone clones a cache holding about 2 GiB of real content four
// ways: by reflink (xfs host, reflink=1), by dindstore's sparse copy and by
// `cp --sparse=always` (ext4 host), and by `rsync -aHAX` of the mounted tree
// (what Sysbox does at container start). Targets: reflink well under a
// second; sparse copy at least as fast as cp; both faster than rsync.
func BenchmarkClone(b *testing.B) {
	testutil.RequiresRoot(b)
	testutil.RequiresTool(b, "mkfs.xfs")
	ext4Host, xfsHost := hostFS(b, Ext4, 8<<30), hostFS(b, XFS, 8<<30)
	src := filepath.Join(ext4Host, "src.img")
	fillBenchImage(b, src, 2<<30)
	xsrc := filepath.Join(xfsHost, "src.img")
	if out, err := exec.Command("cp", "--sparse=always", src, xsrc).CombinedOutput(); err != nil {
		b.Fatalf("cp: %v %s", err, out)
	}
	run := func(name string, fn func(dst string)) {
		b.Run(name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				dst := filepath.Join(filepath.Dir(src), fmt.Sprintf("dst-%s-%d", name, i))
				if name == "reflink" {
					dst = filepath.Join(xfsHost, fmt.Sprintf("dst-%d", i))
				}
				b.StopTimer()
				coldCache(b, src, xsrc) // every way starts from the disk, not the page cache
				b.StartTimer()
				fn(dst)
				b.StopTimer()
				_ = os.RemoveAll(dst)
				b.StartTimer()
			}
		})
	}
	run("reflink", func(dst string) { cloneExpect(b, dst, xsrc, CloneReflink) })
	run("sparse-copy", func(dst string) { cloneExpect(b, dst, src, CloneSparseCopy) })
	run("cp-sparse", func(dst string) { execOrFail(b, "cp", "--sparse=always", src, dst) })
	run("rsync-tree", func(dst string) { rsyncTree(b, src, dst) })
}

func cloneExpect(b *testing.B, dst, src string, want CloneMethod) {
	if m, err := CloneFile(dst, src); err != nil || m != want {
		b.Fatalf("CloneFile = %s, %v; want %s", m, err, want)
	}
}

// rsyncTree copies the mounted tree of src into a directory dst.
func rsyncTree(b *testing.B, src, dst string) {
	b.StopTimer()
	mnt := src + ".mnt"
	_ = os.Mkdir(mnt, 0o700)
	if _, err := MountImage(context.Background(), src, mnt, Ext4, "dindstore-bench"); err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
	execOrFail(b, "rsync", "-aHAX", mnt+"/", dst+"/")
	b.StopTimer()
	if err := Unmount(mnt); err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
}

func execOrFail(b *testing.B, name string, args ...string) {
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		b.Fatalf("%s %v: %v %s", name, args, err, out)
	}
}

// fillBenchImage makes a 4 GiB ext4 cache image holding n bytes of random
// data in 1 MiB files, as layers would be.
func fillBenchImage(b *testing.B, img string, n int64) {
	must(b, CreateImage(context.Background(), img, 4<<30, Ext4))
	mnt := img + ".fill"
	must(b, os.Mkdir(mnt, 0o700))
	if _, err := MountImage(context.Background(), img, mnt, Ext4, "dindstore-bench"); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for i := int64(0); i < n>>20; i++ {
		if _, err := rand.Read(buf[:4096]); err != nil {
			b.Fatal(err)
		}
		for j := 4096; j < len(buf); j += 4096 {
			copy(buf[j:j+4096], buf[:4096]) // cheap to make, still real data on disk
			buf[j] = byte(i)
		}
		dir := filepath.Join(mnt, fmt.Sprintf("layer%03d", i/64))
		_ = os.Mkdir(dir, 0o755)
		must(b, os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d", i)), buf, 0o644))
	}
	must(b, Unmount(mnt))
}

// coldCache drops the page cache of the given files (and only theirs).
func coldCache(b *testing.B, paths ...string) {
	for _, p := range paths {
		f, err := os.Open(p)
		must(b, err)
		must(b, f.Sync())
		must(b, unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED))
		f.Close()
	}
}
