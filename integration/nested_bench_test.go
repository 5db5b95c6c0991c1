//go:build linux

package integration

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkInnerWorkload runs, in one go, the same inner workload (a
// 10-layer docker build, then 20 container starts) on three backings of the
// inner /var/lib/docker: a dindstore loop cache, a host directory (what
// docker:dind's VOLUME gives), and the container's own overlay root (where
// the inner daemon falls back to vfs). It reports the times and the disk the
// inner daemon used. Targets: loop within 10% of the host directory, and at
// least 3x less disk than vfs.
func BenchmarkInnerWorkload(b *testing.B) {
	if skipReason != "" {
		b.Skip("skipping: " + skipReason)
	}
	o := startOuter(b, true)
	buildDindImage(b, o)
	root := filepath.Join(b.TempDir(), "root")
	b.Cleanup(func() { cleanupRoot(b, root) })
	hostDir := b.TempDir()
	backings := []struct {
		name  string
		start func() string
		stop  func(id string)
	}{
		{"dindstore-loop", func() string {
			r := runBinary(b, binary, o.env(), root, append([]string{"launch", "bench", "--kind", "loop", "--size", "20GiB",
				"--image", dindImage, "--detach"}, innerArgs...)...)
			if r.code != 0 {
				b.Fatalf("launch: %s", r.stderr)
			}
			return strings.TrimSpace(r.stdout)
		}, func(string) { dindstoreTB(b, root, "release", "bench") }},
		{"host-dir", func() string {
			return runDind(b, o, "-v", hostDir+":/var/lib/docker")
		}, func(id string) { _, _ = o.docker("rm", "-f", id) }},
		{"vfs-fallback", func() string { return runDind(b, o) }, func(id string) { _, _ = o.docker("rm", "-f", id) }},
	}
	for _, bk := range backings {
		b.Run(bk.name, func(b *testing.B) {
			var build, runs time.Duration
			var disk int64
			for i := 0; i < b.N; i++ {
				id := bk.start()
				waitInner(b, o, id)
				bt, rt, d := innerWorkload(b, o, id, i)
				bk.stop(id)
				build, runs, disk = build+bt, runs+rt, d
			}
			b.ReportMetric(build.Seconds()/float64(b.N), "build-s")
			b.ReportMetric(runs.Seconds()/float64(b.N), "20runs-s")
			b.ReportMetric(float64(disk)/(1<<20), "disk-MiB") // after the last round
		})
	}
}

// runDind starts the dind image directly on the outer engine.
func runDind(b testing.TB, o *outer, extra ...string) string {
	args := append(append([]string{"run", "-d", "--privileged"}, extra...), dindImage)
	id, err := o.docker(append(args, innerArgs[1:]...)...)
	if err != nil {
		b.Fatal(err)
	}
	return strings.TrimSpace(id)
}

func waitInner(b testing.TB, o *outer, id string) {
	for i := 0; i < 300; i++ {
		if _, err := o.docker("exec", id, "docker", "version"); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	logs, _ := o.docker("logs", id)
	b.Fatalf("inner daemon never answered:\n%s", lastLines(logs, 20))
}

// innerWorkload builds a 10-layer image and starts 20 containers inside,
// and returns both times and what /var/lib/docker takes.
func innerWorkload(b testing.TB, o *outer, id string, round int) (build, runs time.Duration, disk int64) {
	if _, err := dockerStdin(o.sock, busyboxTarTB(b), "exec", "-i", id, "docker", "import", "-", "bb:local"); err != nil {
		b.Fatal(err)
	}
	var df strings.Builder
	df.WriteString("FROM bb:local\n")
	for l := 0; l < 10; l++ {
		fmt.Fprintf(&df, "RUN dd if=/dev/urandom of=/layer%d bs=1M count=2 2>/dev/null && echo %d-%d > /n%d\n", l, round, l, l)
	}
	script := fmt.Sprintf("mkdir -p /tmp/ctx && printf '%%s' '%s' > /tmp/ctx/Dockerfile", df.String())
	if _, err := o.docker("exec", id, "sh", "-c", script); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if _, err := o.docker("exec", "-e", "DOCKER_BUILDKIT=0", id, "docker", "build", "-q", "--network", "none", "-t", "ten:layers", "/tmp/ctx"); err != nil {
		b.Fatal(err)
	}
	build = time.Since(start)
	start = time.Now()
	loop := "for i in $(seq 20); do docker run --rm --network none ten:layers true || exit 1; done"
	if _, err := o.docker("exec", id, "sh", "-c", loop); err != nil {
		b.Fatal(err)
	}
	runs = time.Since(start)
	out, err := o.docker("exec", id, "sh", "-c", "sync; du -sxk /var/lib/docker | cut -f1")
	if err != nil {
		b.Fatal(err)
	}
	kib, _ := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	return build, runs, kib << 10
}
