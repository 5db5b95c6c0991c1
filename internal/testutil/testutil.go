package testutil

import (
	"os"
	"os/exec"
	"testing"
)

// RequiresRoot skips the test unless it runs as root. Tests that attach loop
// devices, mount filesystems or start daemons call it first.
func RequiresRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root (loop devices, mounts); run `sudo make test`")
	}
}

// RequiresTool skips the test when an executable is not on PATH.
func RequiresTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("skipping: %s not found on PATH; `make deps` installs it", name)
	}
}
