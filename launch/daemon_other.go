//go:build !linux

package launch

import "syscall"

// daemonProcAttr has no parent-death signal outside Linux.
func daemonProcAttr() *syscall.SysProcAttr { return nil }
