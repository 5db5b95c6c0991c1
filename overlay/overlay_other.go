//go:build !linux

package overlay

import "fmt"

// Probe is not supported on this platform: overlay is a Linux filesystem.
func Probe(dir string) (Result, error) {
	return Result{Dir: dir, Reason: "overlay exists only on Linux"}, nil
}

// FSType is not supported on this platform.
func FSType(path string) (string, error) {
	return "", fmt.Errorf("statfs %s: %w", path, ErrNotSupported)
}
