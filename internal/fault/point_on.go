//go:build faults

package fault

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

// Enabled tells whether this build has failure points.
const Enabled = true

// Point fails at the named point when DINDSTORE_FAULT names it: at once with
// SIGKILL (mode kill), or by returning ErrInjected (mode error).
func Point(name string) error {
	want, mode, _ := strings.Cut(os.Getenv(Env), ":")
	if want != name {
		return nil
	}
	if mode == "error" {
		return fmt.Errorf("%w at %s", ErrInjected, name)
	}
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // SIGKILL cannot be caught; never reached
}
