//go:build linux

package integration

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestWarmCloneCommit: warm a cache from an image on a host dockerd; two
// jobs clone it at once and both see the image inside their inner dockerd,
// and neither sees what the other wrote; the first commits, the second
// fails and does not; the next clone sees the first job's change only.
func TestWarmCloneCommit(t *testing.T) {
	requireSuite(t)
	o := startOuter(t, false)
	if _, err := dockerStdin(o.sock, busyboxTar(t), "import", "-", "warmme:1"); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "root")
	t.Cleanup(func() { cleanupRoot(t, root) })
	r := runBinary(t, binary, o.env(), root, "warm", "w", "--kind", "loop", "--size", "4GiB", "--from-host", "warmme:1")
	if r.code != 0 {
		t.Fatalf("warm: exit %d: %s", r.code, r.stderr)
	}
	t.Logf("warm said:\n%s", r.stderr)
	assertNothingLeft(t, root)

	job := func(name, other, code string) result {
		return dindstore(t, root, "run", name, "--from", "w", "--commit-on", "success", "--",
			"sh", "testdata/job.sh", "{mount}", name, other, code)
	}
	var j1, j2 result
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); j1 = job("j1", "j2", "0") }()
	go func() { defer wg.Done(); j2 = job("j2", "j1", "1") }()
	wg.Wait()
	if j1.code != 0 || !strings.Contains(j1.stdout, "j1 ok") || !strings.Contains(j1.stderr, "committed") {
		t.Fatalf("job 1: exit %d: %s %s", j1.code, j1.stdout, j1.stderr)
	}
	if j2.code != 1 || !strings.Contains(j2.stdout, "j2 ok") || strings.Contains(j2.stderr, "committed") ||
		!strings.Contains(j2.stderr, "per-job cache removed") {
		t.Fatalf("job 2 (fails on purpose): exit %d: %s %s", j2.code, j2.stdout, j2.stderr)
	}
	j3 := dindstore(t, root, "run", "j3", "--from", "w", "--", "sh", "-c",
		`test -e {mount}/j1-file && test ! -e {mount}/j2-file && echo sees-j1-only`)
	if j3.code != 0 || !strings.Contains(j3.stdout, "sees-j1-only") {
		t.Fatalf("the next clone: exit %d: %s %s", j3.code, j3.stdout, j3.stderr)
	}
	var entries []struct {
		Key        string
		Generation int
		Hits       int64
		Clone      bool
		Parent     string
	}
	must(t, json.Unmarshal([]byte(dindstore(t, root, "ls", "--json").stdout), &entries))
	for _, e := range entries {
		if e.Key == "w" && (e.Generation != 1 || e.Hits != 3) {
			t.Errorf("warm cache after one commit and three clones: %+v", e)
		}
		if e.Key == "j1" || e.Key == "j2" || e.Key == "j3" {
			t.Errorf("per-job clone %s is still listed after its job (committed, failed, or done): %+v", e.Key, e)
		}
	}
	assertNothingLeft(t, root)
}

// TestWarmPull: warm a cache by pulling through its inner daemon from a
// local registry (no Docker Hub here).
func TestWarmPull(t *testing.T) {
	requireSuite(t)
	reg := startRegistry(t)
	o := startOuter(t, false)
	ref := reg + "/warmme:1"
	if _, err := dockerStdin(o.sock, busyboxTar(t), "import", "-", ref); err != nil {
		t.Fatal(err)
	}
	if _, err := o.docker("push", ref); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "root")
	t.Cleanup(func() { cleanupRoot(t, root) })
	r := runBinary(t, binary, o.env(), root, "warm", "p", "--kind", "loop", "--size", "2GiB", "--pull", ref)
	if r.code != 0 || !strings.Contains(r.stderr, "done, 1 in") {
		t.Fatalf("warm --pull: exit %d, want one layer pulled: %s", r.code, r.stderr)
	}
	t.Logf("warm said:\n%s", r.stderr)
	if out := mustRun(t, root, "run", "p", "--", "sh", innerDockerScript, "{mount}"); !strings.Contains(out, ref) {
		t.Fatalf("the pulled image is not in the cache: %q", out)
	}
	if r := runBinary(t, binary, o.env(), root, "warm", "p", "--pull", reg+"/nosuch:1"); r.code != 1 || r.stderr == "" {
		t.Fatalf("pull of a missing image: exit %d, %q", r.code, r.stderr)
	}
	assertNothingLeft(t, root)
}

// TestPerJobKeep: --keep keeps a per-job clone after a failed job; a plain
// cache is never removed after its job.
func TestPerJobKeep(t *testing.T) {
	requireSuite(t)
	root := filepath.Join(t.TempDir(), "root")
	t.Cleanup(func() { cleanupRoot(t, root) })
	mustRun(t, root, "run", "w", "--kind", "loop", "--size", "256MiB", "--", "sh", "-c", "echo base > {mount}/b")
	if r := dindstore(t, root, "run", "kept", "--from", "w", "--keep-cache", "--", "false"); r.code != 1 {
		t.Fatalf("failing job: exit %d, %s", r.code, r.stderr)
	}
	l := listJSON(t, root)
	if _, ok := l["kept"]; !ok {
		t.Error("--keep-cache did not keep the per-job clone")
	}
	if _, ok := l["w"]; !ok {
		t.Error("the warm cache itself was removed")
	}
	if r := dindstore(t, root, "run", "kept", "--", "cat", "{mount}/b"); r.code != 0 || strings.TrimSpace(r.stdout) != "base" {
		t.Fatalf("the kept clone: exit %d, %q", r.code, r.stdout)
	}
	if _, ok := listJSON(t, root)["kept"]; ok {
		t.Error("a per-job clone used again without --keep-cache is still there")
	}
	// Hook mode: release removes the per-job clone prepare made.
	if r := dindstore(t, root, "prepare", "pj", "--from", "w"); r.code != 0 {
		t.Fatalf("prepare --from: exit %d, %s", r.code, r.stderr)
	}
	if r := dindstore(t, root, "release", "pj"); r.code != 0 || !strings.Contains(r.stderr, "per-job cache removed") {
		t.Fatalf("release of a per-job clone: exit %d, %q", r.code, r.stderr)
	}
	if _, ok := listJSON(t, root)["pj"]; ok {
		t.Error("release left the per-job clone")
	}
	assertNothingLeft(t, root)
}
