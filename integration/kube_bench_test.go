//go:build linux

package integration

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkPodReady: a dind pod created → its inner daemon answering, and
// → the job's image there, under a real kubelet: /var/lib/docker a clone of
// a warm cache (the image in it already) against an emptyDir on the same
// node (the image loaded, as a pull would). ready-ms and image-ms are
// medians of the runs; the pod's deletion is not timed.
func BenchmarkPodReady(b *testing.B) {
	if skipReason != "" {
		b.Skip(skipReason)
	}
	dir := b.TempDir()
	root := filepath.Join(dir, "cache-root")
	b.Cleanup(func() { cleanupCSI(b, dir, root) })
	c, _ := startPluginNode(b, dir, root, "--default-size", "2Gi")
	seed := filepath.Join(dir, "seed")
	c.create("/api/v1/namespaces/default/pods", dindPod("seed", seed, map[string]string{"cacheKey": "seed"}))
	waitDocker(c, seed)
	_, err := dockerStdin(filepath.Join(seed, "docker.sock"), busyboxTarTB(b), "import", "-", "it-busybox")
	must(b, err)
	c.deletePod("seed", "default")
	if r := runBinary(b, binary, nil, root, "clone", "k8s.default.seed", "bench-warm"); r.code != 0 {
		b.Fatalf("clone the seed into the warm key: %s", r.stderr)
	}
	for _, mode := range []struct {
		name   string
		volume func() map[string]any
		load   bool
	}{
		{"warm-clone", func() map[string]any {
			return map[string]any{"csi": map[string]any{"driver": "dindstore.csi.dindstore.io",
				"volumeAttributes": map[string]string{"from": "bench-warm"}}}
		}, false},
		{"empty-dir", func() map[string]any { return map[string]any{"emptyDir": map[string]any{}} }, true},
	} {
		b.Run(mode.name, func(b *testing.B) {
			var ready, image []time.Duration
			for i := 0; i < b.N; i++ {
				name := fmt.Sprintf("%s-%d", mode.name, i)
				sock := filepath.Join(dir, name)
				start := time.Now()
				c.create("/api/v1/namespaces/default/pods", dindPodWith(name, sock, mode.volume()))
				waitDocker(c, sock)
				ready = append(ready, time.Since(start))
				if mode.load {
					_, err := dockerStdin(filepath.Join(sock, "docker.sock"), busyboxTarTB(b), "import", "-", "it-busybox")
					must(b, err)
				}
				if out, err := podDocker(sock, "images", "-q", "it-busybox"); err != nil || out == "" {
					b.Fatalf("no image in %s: %q %v", name, out, err)
				}
				image = append(image, time.Since(start))
				b.StopTimer()
				c.deletePod(name, "default")
				b.StartTimer()
			}
			b.ReportMetric(float64(median(ready).Microseconds())/1000, "ready-ms")
			b.ReportMetric(float64(median(image).Microseconds())/1000, "image-ms")
		})
	}
}
