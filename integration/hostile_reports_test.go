//go:build linux

package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAbandonedPerJobClone: a per-job clone whose holder is killed before
// its job ends (so before any commit) is reported as abandoned, not idle;
// gc --dry-run says it would remove it, gc removes it, and the warm cache
// is untouched. The ls footer counts states as they are.
func TestAbandonedPerJobClone(t *testing.T) {
	requireSuite(t)
	root := filepath.Join(t.TempDir(), "root")
	t.Cleanup(func() { cleanupRoot(t, root) })
	mustRun(t, root, "run", "base", "--kind", "loop", "--size", "256MiB", "--", "sh", "-c", "echo base > {mount}/b")
	cmd := exec.Command(binary, "--root", root, "run", "job", "--from", "base", "--commit-on", "success", "--",
		"sh", "-c", "touch {mount}/ready; exec sleep 600")
	must(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := filepath.Join(root, "mounts", "job", "ready")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the job never got ready")
		}
	}
	time.Sleep(300 * time.Millisecond) // past the guard's delay: the guard repairs at once
	must(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	waitGuards(t, root)
	if e := listJSON(t, root)["job"]; e.State != "abandoned" {
		t.Fatalf("the killed job's clone: %+v, want abandoned", e)
	}
	if out := mustRun(t, root, "ls"); !strings.Contains(out, "0 in use, 1 abandoned") {
		t.Errorf("the ls footer does not count the abandoned clone apart:\n%s", out)
	}
	if out := mustRun(t, root, "gc", "--dry-run"); !strings.Contains(out, "would be removed") || !strings.Contains(out, "abandoned") {
		t.Errorf("gc --dry-run:\n%s", out)
	}
	if _, ok := listJSON(t, root)["job"]; !ok {
		t.Fatal("gc --dry-run removed the clone")
	}
	mustRun(t, root, "gc")
	l := listJSON(t, root)
	if _, ok := l["job"]; ok {
		t.Fatalf("gc left the abandoned clone: %+v", l["job"])
	}
	if e := l["base"]; e.State != "idle" || e.Generation != 0 {
		t.Fatalf("the warm cache after its job's clone was abandoned: %+v", e)
	}
	assertNothingLeft(t, root)
}

// TestPreviousGenerationsCounted: the earlier generations a commit keeps
// are in ls (previous_bytes, and the cache's allocated bytes) and in df's
// total, which is then what the images take on the host.
func TestPreviousGenerationsCounted(t *testing.T) {
	requireSuite(t)
	root := filepath.Join(t.TempDir(), "root")
	t.Cleanup(func() { cleanupRoot(t, root) })
	mustRun(t, root, "run", "base", "--kind", "loop", "--size", "256MiB", "--", "sh", "-c",
		"dd if=/dev/urandom of={mount}/a bs=1M count=16 conv=fsync 2>/dev/null")
	for _, job := range []string{"j1", "j2"} {
		mustRun(t, root, "run", job, "--from", "base", "--commit-on", "success", "--", "sh", "-c",
			"dd if=/dev/urandom of={mount}/"+job+" bs=1M count=8 conv=fsync 2>/dev/null")
	}
	e := listJSON(t, root)["base"]
	img := statImage(t, root, "base")
	if e.Generation != 2 || e.PreviousBytes < 2*16<<20 || e.AllocatedBytes != img.Blocks*512+e.PreviousBytes {
		t.Fatalf("base after two commits: %+v; its current image has %d bytes allocated", e, img.Blocks*512)
	}
	var onDisk int64
	files, _ := filepath.Glob(filepath.Join(root, "images", "*"))
	for _, f := range files {
		var st syscall.Stat_t
		must(t, syscall.Stat(f, &st))
		onDisk += st.Blocks * 512
	}
	var df struct {
		Summary struct {
			AllocatedBytes int64 `json:"allocated_bytes"`
		} `json:"summary"`
	}
	must(t, jsonUnmarshal(mustRun(t, root, "df", "--json"), &df))
	if df.Summary.AllocatedBytes != onDisk {
		t.Fatalf("df says the caches take %d bytes; the images (%d files, earlier generations included) take %d",
			df.Summary.AllocatedBytes, len(files), onDisk)
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
