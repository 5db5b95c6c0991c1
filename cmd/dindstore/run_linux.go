package main

import "syscall"

// childProcAttr makes the kernel kill the command if dindstore dies: the
// lock goes with dindstore, and the command must not go on writing to a
// cache that another daemon may then take.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
