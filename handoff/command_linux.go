package handoff

import "syscall"

// procAttr makes the kernel kill the command if dindstore dies: the lock
// goes with dindstore, and the command must not go on writing to a cache
// that another daemon may then take. (Its descendants are ended through
// the lease's process group and its guard; see proctree.)
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// setCgroup makes the process start in the cgroup open at fd
// (CLONE_INTO_CGROUP).
func setCgroup(a *syscall.SysProcAttr, fd int) {
	a.UseCgroupFD, a.CgroupFD = true, fd
}
