//go:build linux

package integration

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// benchImages are the bench's images: real files of this machine (the Go
// toolchain, the engine's and Kubernetes' binaries, /usr/share), a layer
// per directory or file, about 1 GiB in all.
var benchImages = map[string][]string{
	"toolchain": {"/usr/local/go/bin", "/usr/local/go/pkg", "/usr/local/go/src", "/usr/local/go/lib", "/usr/local/go/misc"},
	"engine": {".cache/engine/dockerd", ".cache/engine/containerd", ".cache/engine/docker-buildx",
		".cache/engine/containerd-shim-runc-v2", ".cache/engine/runc", ".cache/engine/rootlesskit"},
	"kube":  {".cache/k8s/bin/kubelet", ".cache/k8s/bin/kube-apiserver", ".cache/k8s/bin/etcd"},
	"share": {"/usr/share/doc", "/usr/share/locale", "/usr/share/i18n", "/usr/share/zoneinfo", "/usr/share/perl"},
}

// BenchmarkFleetPull: a cold node gets a warm cache holding about 1 GiB of
// image content (four images, 19 layers) in one run, three ways: `dindstore
// pull` of the cache pushed by another node; an empty inner dockerd pulling
// the same images from the same local registry (what operators do today);
// and the artifact's chunks fetched with plain HTTP GETs, 4 at a time (the
// registry's raw throughput: the limit). Then a job changes 5% and commits,
// and the node holding the previous generation pulls the next one.
// Targets: pull >= 3x faster than the inner docker pull, >= 70% of the raw
// throughput, the incremental pull >= 10x faster than the full one.
func BenchmarkFleetPull(b *testing.B) {
	if skipReason != "" {
		b.Skip(skipReason)
	}
	reg := newTestRegistry(b, registryOptions{})
	refs := buildBenchImages(b, reg)
	dir := b.TempDir()
	a := filepath.Join(dir, "a")
	b.Cleanup(func() { cleanupRoot(b, a) })
	warm := append([]string{"warm", "base", "--kind", "loop", "--size", "8GiB", "--quiet"}, pullFlags(refs)...)
	must(b, runOK(b, a, warm...))
	ref := reg.addr + "/fleet/base"
	must(b, runOK(b, a, "push", "--plain-http", "base", ref+":g0"))
	var full, docker, raw, incr, disk []time.Duration
	var rawBytes int64
	for i := 0; i < b.N; i++ {
		node := filepath.Join(dir, fmt.Sprintf("node%d", i))
		b.Cleanup(func() { cleanupRoot(b, node) })
		must(b, sh("sync")) // each starts with nothing dirty to write back
		full = append(full, timed(b, func() error { return runOK(b, node, "pull", "--plain-http", "-q", ref+":g0", "base") }))
		must(b, sh("sync"))
		docker = append(docker, innerPull(b, filepath.Join(dir, fmt.Sprintf("cold%d", i)), refs))
		must(b, sh("sync"))
		d, n := rawFetch(b, reg, "fleet/base", "g0")
		raw, rawBytes = append(raw, d), n
		must(b, sh("sync"))
		disk = append(disk, diskFloor(b, filepath.Join(node, "images", "base.img"), filepath.Join(dir, "floor")))
		job := fmt.Sprintf("dd if=/dev/urandom of={mount}/change%d bs=1M count=52 status=none", i) // 5% of ~1 GiB
		must(b, runOK(b, a, "run", "job", "--from", "base", "--commit-on", "success", "--", "sh", "-c", job))
		tag := fmt.Sprintf("%s:g%d", ref, i+1)
		must(b, runOK(b, a, "push", "--plain-http", "base", tag))
		must(b, sh("sync"))
		incr = append(incr, timed(b, func() error { return runOK(b, node, "pull", "--plain-http", "-q", tag, "base") }))
	}
	reportFleet(b, median(full), median(docker), median(raw), median(incr), rawBytes)
	fmt.Printf("| the disk's floor: the pulled image's data written (cp, fsync) | %v | |\n\n", median(disk).Round(time.Millisecond))
}

// pullFlags are warm's --pull flags for refs.
func pullFlags(refs []string) []string {
	var out []string
	for _, r := range refs {
		out = append(out, "--pull", r)
	}
	return out
}

// reportFleet prints the table and reports the ratios as metrics.
func reportFleet(b *testing.B, full, docker, raw, incr time.Duration, rawBytes int64) {
	b.ReportMetric(full.Seconds(), "pull-s")
	b.ReportMetric(docker.Seconds(), "docker-pull-s")
	b.ReportMetric(raw.Seconds(), "raw-get-s")
	b.ReportMetric(incr.Seconds(), "incremental-s")
	fmt.Printf("\n| cold node, ~1 GiB of images (medians) | time | target |\n|---|---|---|\n")
	fmt.Printf("| dindstore pull | %v | |\n| inner docker pull, same images, same registry | %v | pull >= 3x faster: %.1fx |\n",
		full.Round(time.Millisecond), docker.Round(time.Millisecond), docker.Seconds()/full.Seconds())
	fmt.Printf("| plain GETs of the artifact's chunks (%d MiB) | %v | pull >= 70%% of it: %.0f%% |\n", rawBytes>>20,
		raw.Round(time.Millisecond), 100*raw.Seconds()/full.Seconds())
	fmt.Printf("| incremental pull of a 5%% change | %v | >= 10x faster than full: %.1fx |\n",
		incr.Round(time.Millisecond), full.Seconds()/incr.Seconds())
}

// buildBenchImages builds benchImages on an outer dockerd, from the files
// that exist here, and pushes them to reg; it returns their references.
func buildBenchImages(b *testing.B, reg *testRegistry) []string {
	o := startOuter(b, false)
	_, err := dockerStdin(o.sock, busyboxTarTB(b), "import", "-", "fleet-bench-base:1")
	must(b, err)
	var refs []string
	var total int64
	for name, paths := range benchImages {
		ctx := b.TempDir()
		dockerfile := "FROM fleet-bench-base:1\n"
		for i, p := range paths {
			if !filepath.IsAbs(p) {
				p = filepath.Join("..", p) // the module's .cache
			}
			if _, err := os.Stat(p); err != nil {
				continue
			}
			must(b, sh("cp", "-a", p, filepath.Join(ctx, strconv.Itoa(i))))
			dockerfile += fmt.Sprintf("COPY %d /content/%d\n", i, i)
			total += duBytes(b, p)
		}
		must(b, os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte(dockerfile), 0o644))
		ref := reg.addr + "/bench/" + name + ":1"
		for _, args := range [][]string{{"build", "-q", "-t", ref, ctx}, {"push", ref}} {
			if out, err := o.docker(args...); err != nil {
				b.Fatalf("docker %v: %v: %s", args, err, out)
			}
		}
		refs = append(refs, ref)
	}
	if total < 512<<20 {
		b.Skipf("only %d MiB of content to build images of here (make engine and make k8s add more)", total>>20)
	}
	b.Logf("images of %d MiB: %v", total>>20, refs)
	return refs
}

// duBytes is what du says path holds.
func duBytes(b *testing.B, path string) int64 {
	out, err := exec.Command("du", "-sb", path).Output()
	must(b, err)
	n, _ := strconv.ParseInt(strings.Fields(string(out))[0], 10, 64)
	return n
}

// diskFloor times writing image's data (its data ranges, the bytes a pull
// writes) into a new sparse file and syncing it: what the disk takes.
func diskFloor(b *testing.B, image, to string) time.Duration {
	defer os.Remove(to)
	return timed(b, func() error { return sh("sh", "-c", `cp --sparse=always "$0" "$1" && sync "$1"`, image, to) })
}

// innerPull times an empty inner dockerd pulling refs on a fresh cache.
func innerPull(b *testing.B, root string, refs []string) time.Duration {
	b.Cleanup(func() { cleanupRoot(b, root) })
	args := append([]string{"run", "cold", "--kind", "loop", "--size", "8GiB", "--", "sh", "testdata/pull-images.sh", "{mount}"}, refs...)
	r := dindstoreTB(b, root, args...)
	_, secs, ok := strings.Cut(strings.TrimSpace(r.stdout), "pull-seconds=")
	f, err := strconv.ParseFloat(secs, 64)
	if r.code != 0 || !ok || err != nil {
		b.Fatalf("inner docker pull: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	return time.Duration(f * float64(time.Second))
}

// rawFetch GETs every chunk blob of repo:tag, 4 at a time, and says how
// long that took and how many bytes came.
func rawFetch(b *testing.B, reg *testRegistry, repo, tag string) (time.Duration, int64) {
	layers := reg.manifestLayers(b, repo, tag)
	start := time.Now()
	var mu sync.Mutex
	var total int64
	var wg sync.WaitGroup
	work := make(chan string)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range work {
				n := getBlob(b, reg, repo, d)
				mu.Lock()
				total += n
				mu.Unlock()
			}
		}()
	}
	for _, d := range layers {
		work <- d
	}
	close(work)
	wg.Wait()
	return time.Since(start), total
}

func getBlob(b *testing.B, reg *testRegistry, repo, digest string) int64 {
	resp, err := http.Get(reg.url() + "/v2/" + repo + "/blobs/" + digest)
	if err != nil {
		b.Error(err)
		return 0
	}
	defer resp.Body.Close()
	n, _ := io.Copy(io.Discard, resp.Body)
	return n
}
