//go:build !linux

package loopdev

import (
	"os"
	"time"
)

// Attach is not supported on this platform.
func Attach(string, Params) (*Device, error) { return nil, ErrNotSupported }

// AttachFile is not supported on this platform.
func AttachFile(*os.File, Params) (*Device, error) { return nil, ErrNotSupported }

// Status is not supported on this platform.
func Status(string) (*Info, error) { return nil, ErrNotSupported }

// Detach is not supported on this platform.
func Detach(string) error { return ErrNotSupported }

// WaitDetached is not supported on this platform.
func WaitDetached(string, uint64, uint64, time.Duration) error { return ErrNotSupported }

// SetCapacity is not supported on this platform.
func SetCapacity(string) error { return ErrNotSupported }

// List is not supported on this platform.
func List() ([]Info, error) { return nil, ErrNotSupported }

// ListTagged is not supported on this platform.
func ListTagged(string) ([]Info, error) { return nil, ErrNotSupported }

// FindByFile is not supported on this platform.
func FindByFile(string) ([]Info, error) { return nil, ErrNotSupported }

// DetachIfBacked is not supported on this platform.
func DetachIfBacked(string, uint64, uint64) error { return ErrNotSupported }
