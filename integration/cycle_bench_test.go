//go:build linux

package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// pairTimer collects the durations of a dindstore step and of the same
// kernel work done by hand, measured interleaved in one run, and reports
// their medians and ratio.
type pairTimer struct{ ds, hand []time.Duration }

func (p *pairTimer) report(b *testing.B) {
	ds, hand := median(p.ds), median(p.hand)
	b.ReportMetric(float64(ds.Microseconds())/1000, "dindstore-ms")
	b.ReportMetric(float64(hand.Microseconds())/1000, "by-hand-ms")
	b.ReportMetric(float64(ds)/float64(hand), "ratio")
	b.ReportMetric(0, "ns/op") // the medians above are the figures
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
// `dindstore run KEY -- true`, against `mount -o loop` + `umount` of a
// 100 GiB image of the same kind, interleaved.
func BenchmarkJobCycle(b *testing.B) {
	_, root, mnt := benchDirs(b)
	for _, k := range []string{"cycle", "hand"} {
		if r := dindstoreTB(b, root, "run", k, "--kind", "loop", "--size", "100GiB", "--overcommit", "--", "true"); r.code != 0 {
			b.Fatalf("prepare %s: %s", k, r.stderr)
		}
	}
	image := filepath.Join(root, "images", "hand.img")
	var p pairTimer
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.ds = append(p.ds, timed(b, func() error {
			return runOK(b, root, "run", "cycle", "--overcommit", "--", "true")
		}))
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
// release, against truncate + mkfs.ext4 + mount -o loop + umount by hand.
func BenchmarkFreshCache(b *testing.B) {
	dir, root, mnt := benchDirs(b)
	var p pairTimer
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		key := fmt.Sprintf("fresh-%d", i)
		p.ds = append(p.ds, timed(b, func() error {
			return runOK(b, root, "run", key, "--kind", "loop", "--size", "100GiB", "--overcommit", "--", "true")
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
