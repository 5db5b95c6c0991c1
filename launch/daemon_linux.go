package launch

import "syscall"

// daemonProcAttr makes the kernel kill a daemon dindstore started when
// dindstore dies: the daemon must not outlive the cache's lock.
func daemonProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
