package loopdev

import (
	"errors"
	"fmt"
	"strings"
)

// TagMax is the longest tag the kernel keeps in lo_file_name (64 bytes, the
// last one a NUL).
const TagMax = 63

var (
	// ErrNoLoopDevice means no loop device could be allocated or opened: the
	// kernel has no loop support, /dev/loop-control is missing, or every try
	// to bind a free device lost a race.
	ErrNoLoopDevice = errors.New("no loop device available")
	// ErrNotSupported is returned on platforms without loop devices.
	ErrNotSupported = errors.New("loop devices are not supported on this platform")
	// ErrNotBound means a device has no backing file.
	ErrNotBound = errors.New("loop device is not bound")
)

// Params says how a file is attached.
type Params struct {
	// ReadOnly attaches the device read-only.
	ReadOnly bool
	// DirectIO asks the kernel for direct I/O on the backing file, which
	// avoids caching the data twice. The kernel may refuse it silently; the
	// effective state is in Device.DirectIO.
	DirectIO bool
	// Tag is stored in lo_file_name (at most TagMax bytes, longer tags are
	// cut) so that ListTagged can find the device again.
	Tag string
	// BlockSize is the device's logical block size (512, 1024, 2048 or
	// 4096). Zero leaves it to the kernel, which with direct I/O takes the
	// backing file's I/O alignment: that changes when a file is reflinked,
	// and a filesystem made for smaller blocks then no longer mounts. Give
	// the size the filesystem was made for; the kernel turns direct I/O off
	// where the backing file cannot do it with that size.
	BlockSize uint32
}

// Info describes a bound loop device, as read back from the kernel.
type Info struct {
	// Path is the device node, e.g. /dev/loop3.
	Path string
	// Number is N in /dev/loopN.
	Number int
	// BackingDev and BackingInode identify the backing file.
	BackingDev   uint64
	BackingInode uint64
	// BackingFile is the backing file's path as the kernel last knew it
	// (sysfs backing_file; it ends in " (deleted)" once unlinked). Set by
	// List; a hint for reports, never an identity: use dev and inode.
	BackingFile string
	// Tag is the lo_file_name the device was attached with.
	Tag string
	// Autoclear is true when the kernel detaches the device on last close.
	Autoclear bool
	// DirectIO is true when the device does direct I/O on its backing file.
	DirectIO bool
	// ReadOnly is true for read-only devices.
	ReadOnly bool
	// BlockSize is the device's logical block size (BLKSSZGET).
	BlockSize int
}

// Device is a loop device attached by this process, still held open. Close
// it once its user (a mount) holds it; see Attach.
type Device struct {
	Info
	file interface{ Close() error }
}

// Close releases this process's hold on the device. With no other user the
// kernel detaches it (autoclear).
func (d *Device) Close() error {
	if d.file == nil {
		return nil
	}
	err := d.file.Close()
	d.file = nil
	return err
}

// Tag builds the tag dindstore gives a device: prefix + name, cut to TagMax.
func Tag(prefix, name string) string {
	t := prefix + name
	if len(t) > TagMax {
		t = t[:TagMax]
	}
	return t
}

// HasTagPrefix reports whether the device's tag starts with prefix.
func (i Info) HasTagPrefix(prefix string) bool {
	return prefix != "" && strings.HasPrefix(i.Tag, prefix)
}

// cString returns the bytes of b up to the first NUL.
func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// ValidBlockSize checks a logical block size for Params.BlockSize: zero
// (the kernel's choice) or a power of two from 512 to 4096.
func ValidBlockSize(n uint32) error {
	switch n {
	case 0, 512, 1024, 2048, 4096:
		return nil
	}
	return fmt.Errorf("loopdev: block size %d: want 512, 1024, 2048 or 4096", n)
}
