package volumes

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/dindstore/dindstore/internal/testutil"
	"github.com/dindstore/dindstore/loopdev"
	"golang.org/x/sys/unix"
)

// BenchmarkProvision provisions a loop cache (sparse image, mkfs, attach,
// mount) with dindstore and by hand (truncate, mkfs.ext4, mount -o loop),
// and reports the bytes the image allocates on the host. Targets: dindstore
// no slower than by hand, at most 16 MiB on the host for 100 GiB, flat as
// the size grows.
func BenchmarkProvision(b *testing.B) {
	testutil.RequiresRoot(b)
	testutil.RequiresTool(b, "mkfs.ext4")
	for _, size := range []int64{10 << 30, 100 << 30, 1 << 40} {
		b.Run(fmt.Sprintf("dindstore/%dGiB", size>>30), func(b *testing.B) { provision(b, size, provisionDindstore) })
	}
	b.Run("by-hand/100GiB", func(b *testing.B) { provision(b, 100<<30, provisionByHand) })
}

func provision(b *testing.B, size int64, fn func(b *testing.B, image, target string, size int64)) {
	var hostBytes int64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := b.TempDir()
		image, target := filepath.Join(dir, "img"), filepath.Join(dir, "mnt")
		if err := os.Mkdir(target, 0o700); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		fn(b, image, target, size)
		b.StopTimer()
		hostBytes = allocatedBytes(b, image)
		if err := Unmount(target); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(hostBytes)/(1<<20), "host-MiB")
}

func provisionDindstore(b *testing.B, image, target string, size int64) {
	ctx := context.Background()
	if err := CreateImage(ctx, image, size, Ext4); err != nil {
		b.Fatal(err)
	}
	if _, err := MountImage(ctx, image, target, Ext4, "dindstore-bench"); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = Unmount(target) })
}

func provisionByHand(b *testing.B, image, target string, size int64) {
	for _, args := range [][]string{
		{"truncate", "-s", fmt.Sprint(size), image},
		{"mkfs.ext4", "-q", "-F", image},
		{"mount", "-o", "loop", image, target},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			b.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	b.Cleanup(func() { _ = Unmount(target) })
}

// allocatedBytes is what the file at path takes on the host (st_blocks×512).
func allocatedBytes(b testing.TB, path string) int64 {
	b.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		b.Fatal(err)
	}
	return st.Blocks * 512
}

// BenchmarkReclaim compares the two ways of giving the host back what an
// inner daemon deleted: FITRIM at release (what dindstore does) and mounting
// with -o discard. Each op writes 256 MiB into a 4 GiB image, deletes it,
// and unmounts; host-MiB is what the image still allocates afterwards.
func BenchmarkReclaim(b *testing.B) {
	testutil.RequiresRoot(b)
	testutil.RequiresTool(b, "mkfs.ext4")
	b.Run("fitrim-at-release", func(b *testing.B) { reclaim(b, "") })
	b.Run("mount-discard", func(b *testing.B) { reclaim(b, "discard") })
	b.Run("neither", func(b *testing.B) { reclaim(b, "nodiscard-notrim") })
}

func reclaim(b *testing.B, mode string) {
	var hostBytes int64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := b.TempDir()
		image, target := filepath.Join(dir, "img"), filepath.Join(dir, "mnt")
		must(b, os.Mkdir(target, 0o700))
		must(b, CreateImage(context.Background(), image, 4<<30, Ext4))
		dev, err := loopdev.Attach(image, loopdev.Params{DirectIO: true, Tag: "dindstore-bench"})
		must(b, err)
		data := "noinit_itable"
		if mode == "discard" {
			data += ",discard"
		}
		err = unix.Mount(dev.Path, target, "ext4", unix.MS_NOATIME, data)
		dev.Close()
		must(b, err)
		b.Cleanup(func() { _ = Unmount(target) })
		b.StartTimer()
		writeAndDelete(b, target, 256<<20)
		if mode == "nodiscard-notrim" {
			must(b, unix.Unmount(target, 0))
		} else {
			must(b, Unmount(target)) // trims first, unless mounted with discard
		}
		b.StopTimer()
		hostBytes = allocatedBytes(b, image)
		_ = Unmount(target)
		b.StartTimer()
	}
	b.ReportMetric(float64(hostBytes)/(1<<20), "host-MiB")
}

func writeAndDelete(b *testing.B, dir string, n int) {
	p := filepath.Join(dir, "blob")
	f, err := os.Create(p)
	must(b, err)
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	for w := 0; w < n; w += len(buf) {
		_, err := f.Write(buf)
		must(b, err)
	}
	must(b, f.Sync())
	must(b, f.Close())
	must(b, os.Remove(p))
	unix.Sync()
}

func must(b testing.TB, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}
