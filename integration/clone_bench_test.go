//go:build linux

package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/dindstore/dindstore/volumes"
)

// xfsHost mounts a sparse xfs filesystem (reflink on) of size bytes to
// stand for a host disk, and returns its mount point; it is unmounted and
// detached afterwards.
func xfsHost(b *testing.B, size int64) string {
	b.Helper()
	dir := b.TempDir()
	image, mnt := filepath.Join(dir, "host.img"), filepath.Join(dir, "host")
	must(b, os.Mkdir(mnt, 0o755))
	ctx := context.Background()
	must(b, volumes.CreateImage(ctx, image, size, volumes.XFS))
	if _, err := volumes.MountImage(ctx, image, mnt, volumes.XFS, "dindstore-bench:xfshost"); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cleanupRoot(b, filepath.Join(mnt, "root"))
		_ = sh("umount", filepath.Join(mnt, "hand"))
		if err := volumes.Unmount(mnt); err != nil {
			b.Error(err)
		}
	})
	return mnt
}

// BenchmarkCloneReady: a warm clone ready for a job on an xfs host —
// `dindstore run JOB --from WARM -- true` (reflink clone, mount, release,
// the per-job clone removed) — against `cp --reflink=always` + `mount -o
// loop` + `umount` by hand, with 1 GiB and 20 GiB of content in the warm
// cache, interleaved.
func BenchmarkCloneReady(b *testing.B) {
	if skipReason != "" {
		b.Skip(skipReason)
	}
	for _, gib := range []int{1, 20} {
		b.Run(fmt.Sprintf("%dGiB", gib), func(b *testing.B) {
			host := xfsHost(b, 64<<30)
			root, mnt := filepath.Join(host, "root"), filepath.Join(host, "hand")
			must(b, os.Mkdir(mnt, 0o700))
			fill := fmt.Sprintf("dd if=/dev/zero of={mount}/content bs=4M count=%d status=none", gib*256)
			if err := runOK(b, root, "run", "w", "--kind", "loop", "--size", "32GiB", "--overcommit", "--",
				"sh", "-c", fill); err != nil {
				b.Fatal(err)
			}
			warm, copyImg := filepath.Join(root, "images", "w.img"), filepath.Join(host, "hand.img")
			var p pairTimer
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				p.ds = append(p.ds, timed(b, func() error {
					return runOK(b, root, "run", fmt.Sprintf("j%d", i), "--from", "w", "--overcommit", "--", "true")
				}))
				p.hand = append(p.hand, timed(b, func() error {
					for _, c := range [][]string{{"cp", "--reflink=always", warm, copyImg},
						{"mount", "-o", "loop,noatime", copyImg, mnt}, {"umount", mnt}} {
						if err := sh(c[0], c[1:]...); err != nil {
							return err
						}
					}
					return nil
				}))
				b.StopTimer()
				must(b, os.Remove(copyImg))
				b.StartTimer()
			}
			p.report(b)
		})
	}
}
