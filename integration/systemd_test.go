//go:build linux

package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdUnits: the shipped units pass `systemd-analyze verify` (with
// this build's binary in place of /usr/local/bin/dindstore; the template
// as an instance), without a warning. systemd is not PID 1 here, so the
// units are checked, not started.
func TestSystemdUnits(t *testing.T) {
	if binary == "" {
		t.Skip(skipReason)
	}
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("skipping: systemd-analyze not found")
	}
	dir := t.TempDir()
	for src, dst := range map[string]string{"dind@.service": "dind@1.service",
		"dindstore-recover.service": "dindstore-recover.service"} {
		b, err := os.ReadFile(filepath.Join("..", "contrib", "systemd", src))
		must(t, err)
		unit := strings.ReplaceAll(string(b), "/usr/local/bin/dindstore", binary)
		must(t, os.WriteFile(filepath.Join(dir, dst), []byte(unit), 0o644))
	}
	cmd := exec.Command("systemd-analyze", "verify", "--man=no", "dind@1.service", "dindstore-recover.service")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Contains(string(out), "ignoring") || strings.Contains(string(out), "Unknown") {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
