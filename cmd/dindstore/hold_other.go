//go:build !linux

package main

import "fmt"

// watchPID needs pidfds, which only Linux has; 0 watches nothing.
func watchPID(pid int) (<-chan struct{}, error) {
	if pid <= 0 {
		return make(chan struct{}), nil
	}
	return nil, fmt.Errorf("%w: --watch-pid needs Linux", errUsage)
}
