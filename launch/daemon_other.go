//go:build !linux

package launch

import (
	"os"
	"syscall"
)

// daemonProcAttr has no parent-death signal or cgroup outside Linux.
func daemonProcAttr(*os.File) *syscall.SysProcAttr { return nil }

// RemoveDaemonDirs has nothing to remove outside Linux, where no daemon is
// started.
func RemoveDaemonDirs(int) error { return nil }
