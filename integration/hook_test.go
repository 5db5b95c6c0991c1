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
