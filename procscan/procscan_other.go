//go:build !linux

package procscan

import "errors"

// ErrNotSupported is returned off Linux.
var ErrNotSupported = errors.New("procscan: not supported on this platform")

// Find is not supported off Linux.
func Find(Target) ([]User, error) { return nil, ErrNotSupported }
