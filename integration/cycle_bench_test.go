//go:build linux

package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/dindstore/dindstore/cache"
	"github.com/dindstore/dindstore/handoff"
	"github.com/dindstore/dindstore/volumes"
)

// pairTimer collects the durations of a dindstore step — through the CLI
// and, when lib is filled, through the handoff library in this process
// (what a long-running caller like the CSI node plugin pays) — and of the
// same kernel work done by hand, measured interleaved in one run, and
// reports their medians and ratios.
type pairTimer struct{ ds, lib, hand []time.Duration }

func (p *pairTimer) report(b *testing.B) {
	ds, hand := median(p.ds), median(p.hand)
	b.ReportMetric(float64(ds.Microseconds())/1000, "dindstore-ms")
	b.ReportMetric(float64(hand.Microseconds())/1000, "by-hand-ms")
	b.ReportMetric(float64(ds)/float64(hand), "ratio")
	if len(p.lib) > 0 {
		lib := median(p.lib)
		b.ReportMetric(float64(lib.Microseconds())/1000, "library-ms")
		b.ReportMetric(float64(lib)/float64(hand), "library-ratio")
	}
	b.ReportMetric(0, "ns/op") // the medians above are the figures
}

// libCycle is one job's cycle through the handoff library: hand key of r
// to a payload that runs in this process and returns at once, then drop
// it if it is a per-job clone (as the CLI does after a job).
func libCycle(r *cache.Root, key string) error {
	ctx := context.Background()
	payload := &handoff.Func{Run: func(context.Context, handoff.Lease) error { return nil }}
	acquire := handoff.From(r, key, cache.ModeRun, nil, cache.AcquireOptions{Overcommit: true}, nil)
	if _, err := handoff.Hand(ctx, acquire, payload, handoff.Options{}); err != nil {
		return err
	}
	_, err := r.DropPerJob(ctx, key)
	return err
}

// openRoot opens a benchmark's root as a library caller does.
func openRoot(b *testing.B, root string) *cache.Root {
	r, err := cache.OpenRoot(root, true)
	if err != nil {
		b.Fatal(err)
	}
	return r
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// timed runs fn and returns how long it took, failing the benchmark on error.
func timed(b *testing.B, fn func() error) time.Duration {
	start := time.Now()
	if err := fn(); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

func sh(name string, args ...string) error {
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %v: %w: %s", name, args, err, out)
	}
	return nil
}

// BenchmarkJobCycle: one job's cycle on an existing 100 GiB loop cache,
// `dindstore run KEY -- true` and the same through the library (libCycle),
// against `mount -o loop` + `umount` of a 100 GiB image of the same kind,
// interleaved.
func BenchmarkJobCycle(b *testing.B) {
	_, root, mnt := benchDirs(b)
	for _, k := range []string{"cycle", "hand"} {
		if r := dindstoreTB(b, root, "run", k, "--kind", "loop", "--size", "100GiB", "--overcommit", "--", "true"); r.code != 0 {
			b.Fatalf("prepare %s: %s", k, r.stderr)
		}
	}
	image := filepath.Join(root, "images", "hand.img")
	r := openRoot(b, root)
	var p pairTimer
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.ds = append(p.ds, timed(b, func() error {
			return runOK(b, root, "run", "cycle", "--overcommit", "--", "true")
		}))
		p.lib = append(p.lib, timed(b, func() error { return libCycle(r, "cycle") }))
		p.hand = append(p.hand, timed(b, func() error {
			if err := sh("mount", "-o", "loop,noatime", image, mnt); err != nil {
				return err
			}
			return sh("umount", mnt)
		}))
	}
	p.report(b)
}

// BenchmarkFreshCache: a fresh 100 GiB cache, create + first use +
// release (CLI and library), against truncate + mkfs.ext4 + mount -o loop + umount by hand.
func BenchmarkFreshCache(b *testing.B) {
	dir, root, mnt := benchDirs(b)
	r := openRoot(b, root)
	spec := cache.Spec{Kind: volumes.Loop, Size: 100 << 30}
	var p pairTimer
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		key := fmt.Sprintf("fresh-%d", i)
		p.ds = append(p.ds, timed(b, func() error {
			return runOK(b, root, "run", key, "--kind", "loop", "--size", "100GiB", "--overcommit", "--", "true")
		}))
		p.lib = append(p.lib, timed(b, func() error {
			if _, _, err := r.Create(context.Background(), key+"-lib", spec); err != nil {
				return err
			}
			return libCycle(r, key+"-lib")
		}))
		image := filepath.Join(dir, fmt.Sprintf("hand-%d.img", i))
		p.hand = append(p.hand, timed(b, func() error {
			for _, c := range [][]string{{"truncate", "-s", "100G", image}, {"mkfs.ext4", "-q", image},
				{"mount", "-o", "loop,noatime", image, mnt}, {"umount", mnt}} {
				if err := sh(c[0], c[1:]...); err != nil {
					return err
				}
			}
			return nil
		}))
		b.StopTimer()
		_ = os.Remove(image)
		runOK(b, root, "rm", key)
		runOK(b, root, "rm", key+"-lib")
		b.StartTimer()
	}
	p.report(b)
}

// benchDirs makes a benchmark's directory, a root in it and a mount point
// for the work by hand, cleaned up afterwards.
func benchDirs(b *testing.B) (dir, root, mnt string) {
	if skipReason != "" {
		b.Skip(skipReason)
	}
	dir = b.TempDir()
	root, mnt = filepath.Join(dir, "root"), filepath.Join(dir, "hand")
	b.Cleanup(func() { cleanupRoot(b, root); _ = exec.Command("umount", mnt).Run() })
	must(b, os.Mkdir(mnt, 0o700))
	return dir, root, mnt
}

func runOK(b *testing.B, root string, args ...string) error {
	if r := dindstoreTB(b, root, args...); r.code != 0 {
		return fmt.Errorf("dindstore %v: exit %d: %s", args, r.code, r.stderr)
	}
	return nil
}
