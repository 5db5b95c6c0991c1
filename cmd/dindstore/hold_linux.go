package main

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// watchPID returns a channel closed when process pid ends (never, for 0),
// through a pidfd, which a reused pid cannot fool.
func watchPID(pid int) (<-chan struct{}, error) {
	gone := make(chan struct{})
	if pid <= 0 {
		return gone, nil
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: --watch-pid %d: %w", errUsage, pid, err)
	}
	go func() {
		defer unix.Close(fd)
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			if _, err := unix.Poll(fds, -1); err != unix.EINTR {
				break
			}
		}
		close(gone)
	}()
	return gone, nil
}
