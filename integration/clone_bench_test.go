//go:build linux

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dindstore/dindstore/cache"
	"github.com/dindstore/dindstore/volumes"
	"golang.org/x/sys/unix"
)

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
			host := hostFS(b, 64<<30, volumes.XFS)
			root, mnt := filepath.Join(host, "root"), filepath.Join(host, "hand")
			must(b, os.Mkdir(mnt, 0o700))
			b.Cleanup(func() { _ = sh("umount", mnt) })
			fill := fmt.Sprintf("dd if=/dev/zero of={mount}/content bs=4M count=%d status=none", gib*256)
			if err := runOK(b, root, "run", "w", "--kind", "loop", "--size", "32GiB", "--overcommit", "--",
				"sh", "-c", fill); err != nil {
				b.Fatal(err)
			}
			warm, copyImg := filepath.Join(root, "images", "w.img"), filepath.Join(host, "hand.img")
			r := openRoot(b, root)
			var p pairTimer
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				p.ds = append(p.ds, timed(b, func() error {
					return runOK(b, root, "run", fmt.Sprintf("j%d", i), "--from", "w", "--overcommit", "--", "true")
				}))
				p.lib = append(p.lib, timed(b, func() error {
					key := fmt.Sprintf("l%d", i)
					if _, _, err := r.FromWarm(context.Background(), key, "w", cache.Spec{}); err != nil {
						return err
					}
					return libCycle(r, key)
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

// TestSharedExtentsCountedOnce: on an xfs host, a warm cache and five
// reflinked clones of it: df's total of what the caches allocate counts
// the shared blocks once, within 5% of what the host filesystem's own
// statfs says they take.
func TestSharedExtentsCountedOnce(t *testing.T) {
	requireSuite(t)
	host := hostFS(t, 4<<30, volumes.XFS)
	root := filepath.Join(host, "root")
	before := hostUsed(t, host)
	mustRun(t, root, "run", "w", "--kind", "loop", "--size", "1GiB", "--", "sh", "-c",
		"dd if=/dev/zero of={mount}/content bs=4M count=64 status=none")
	for i := 1; i <= 5; i++ {
		r := dindstore(t, root, "clone", "w", fmt.Sprintf("c%d", i))
		if r.code != 0 || !strings.Contains(r.stdout+r.stderr, "reflink") {
			t.Fatalf("clone %d: exit %d, %s %s (want a reflink clone)", i, r.code, r.stdout, r.stderr)
		}
	}
	used := hostUsed(t, host) - before
	var df struct {
		Caches  []entryJSON
		Summary struct {
			AllocatedBytes int64 `json:"allocated_bytes"`
		}
	}
	must(t, json.Unmarshal([]byte(mustRun(t, root, "df", "--json")), &df))
	total := df.Summary.AllocatedBytes
	t.Logf("host used %d MiB for the caches, df says %d MiB allocated (sum per cache: %d MiB)", used>>20, total>>20,
		sumAllocated(df.Caches)>>20)
	if diff := total - used; diff < -used/20 || diff > used/20 {
		t.Errorf("df's total %d is not within 5%% of the host's %d", total, used)
	}
	assertNothingLeft(t, root)
}

func sumAllocated(entries []entryJSON) (n int64) {
	for _, e := range entries {
		n += e.AllocatedBytes
	}
	return n
}

// hostUsed is statfs's used bytes of the filesystem at dir, after a sync.
func hostUsed(t *testing.T, dir string) int64 {
	t.Helper()
	unix.Sync()
	var st unix.Statfs_t
	must(t, unix.Statfs(dir, &st))
	return int64(st.Blocks-st.Bfree) * st.Bsize
}
