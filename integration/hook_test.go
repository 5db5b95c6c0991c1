//go:build linux

package integration

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPrepareRelease: prepare in one process, release in another; a
// prepare while held exits 75; killing the watched pid releases the cache
// within a few seconds; release of nothing held exits 0.
func TestPrepareRelease(t *testing.T) {
	requireSuite(t)
	root := filepath.Join(t.TempDir(), "root")
	t.Cleanup(func() {
		dindstore(t, root, "release", "hk")
		cleanupRoot(t, root)
	})
	r := dindstore(t, root, "prepare", "hk", "--kind", "loop", "--size", "256MiB", "--output", "json")
	var rep struct {
		Mount, Device string
		Driver        string `json:"storage_driver"`
		HolderPID     int    `json:"holder_pid"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &rep) != nil || rep.Mount == "" || rep.Driver != "overlay2" {
		t.Fatalf("prepare: exit %d, %q, %q", r.code, r.stdout, r.stderr)
	}
	if m, _ := mountedAt(rep.Mount); !m {
		t.Fatalf("prepare returned, but %s is not mounted", rep.Mount)
	}
	if r := dindstore(t, root, "prepare", "hk"); r.code != 75 || !strings.Contains(r.stderr, "in use by pid") {
		t.Fatalf("prepare while held: exit %d, %q", r.code, r.stderr)
	}
	if r := dindstore(t, root, "release", "hk"); r.code != 0 || !strings.Contains(r.stdout, "released") {
		t.Fatalf("release: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	assertNothingLeft(t, root)
	if r := dindstore(t, root, "release", "hk"); r.code != 0 || !strings.Contains(r.stdout, "not held") {
		t.Fatalf("release of nothing held: exit %d, %q", r.code, r.stdout)
	}

	job := exec.Command("sleep", "600")
	must(t, job.Start())
	t.Cleanup(func() { _ = job.Process.Kill(); _ = job.Wait() })
	if r := dindstore(t, root, "prepare", "hk", "--watch-pid", itoa(job.Process.Pid)); r.code != 0 {
		t.Fatalf("prepare --watch-pid: exit %d, %s", r.code, r.stderr)
	}
	must(t, job.Process.Kill())
	_ = job.Wait()
	waitIdle(t, root, "hk", 5*time.Second) // after the watched pid died
	assertNothingLeft(t, root)
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestReleaseBusy: release of a prepare lease whose mount a process still
// uses exits non-zero naming it; ls does not call the cache idle; a clone
// of it is refused; once the process is gone, the next release clears it.
func TestReleaseBusy(t *testing.T) {
	requireSuite(t)
	root := filepath.Join(t.TempDir(), "root")
	t.Cleanup(func() { cleanupRoot(t, root) })
	if r := dindstore(t, root, "prepare", "hk-busy", "--kind", "loop", "--size", "256MiB"); r.code != 0 {
		t.Fatalf("prepare: exit %d, %s", r.code, r.stderr)
	}
	busy := exec.Command("sh", "-c", "cd "+filepath.Join(root, "mounts", "hk-busy")+" && exec sleep 600")
	must(t, busy.Start())
	t.Cleanup(func() { _ = busy.Process.Kill(); _ = busy.Wait() })
	time.Sleep(200 * time.Millisecond)
	pid := itoa(busy.Process.Pid)
	r := dindstore(t, root, "release", "hk-busy")
	if r.code == 0 || !strings.Contains(r.stderr, pid) {
		t.Fatalf("release of a busy mount: exit %d, %q %q; want non-zero naming pid %s", r.code, r.stdout, r.stderr, pid)
	}
	t.Logf("release: exit %d: %s", r.code, strings.TrimSpace(r.stderr))
	if strings.Count(r.stderr, "dindstore:") != 1 {
		t.Errorf("the error is printed more than once: %q", r.stderr)
	}
	if st := listJSON(t, root)["hk-busy"].State; st == "idle" {
		t.Error("ls calls a cache idle whose release failed")
	}
	if r := dindstore(t, root, "clone", "hk-busy", "hk-copy"); r.code != 75 {
		t.Errorf("clone of a busy source: exit %d, %q; want 75", r.code, r.stderr)
	}
	if _, ok := listJSON(t, root)["hk-copy"]; ok {
		t.Error("a refused clone left a cache")
	}
	_ = busy.Process.Kill()
	_ = busy.Wait()
	if r := dindstore(t, root, "release", "hk-busy"); r.code != 0 {
		t.Fatalf("release once the process is gone: exit %d, %s", r.code, r.stderr)
	}
	assertNothingLeft(t, root)
	if r := dindstore(t, root, "clone", "hk-busy", "hk-copy"); r.code != 0 {
		t.Errorf("clone of the quiet source: exit %d, %s", r.code, r.stderr)
	}
}
