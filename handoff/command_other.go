//go:build !linux

package handoff

import "syscall"

// procAttr has no parent-death signal off Linux.
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }

// setCgroup does nothing off Linux.
func setCgroup(*syscall.SysProcAttr, int) {}
