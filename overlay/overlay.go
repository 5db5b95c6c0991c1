package overlay

import (
	"errors"
	"fmt"
)

// ErrNotSupported means overlay cannot be used on the probed directory; the
// wrapping error carries the reason.
var ErrNotSupported = errors.New("overlay is not supported here")

// Result is what a probe found.
type Result struct {
	// Dir is the directory probed.
	Dir string
	// FSType names the filesystem Dir is on (ext4, xfs, btrfs, tmpfs, overlay...).
	FSType string
	// DType reports whether the filesystem returns d_type in directory entries
	// (overlay2 requires it; xfs formatted with ftype=0 does not).
	DType bool
	// Mount reports whether a two-lower overlay mount succeeded there.
	Mount bool
	// Reason explains a failure in the kernel's words; empty when supported.
	Reason string
}

// Supported reports whether overlay2 can run on the directory.
func (r Result) Supported() bool { return r.DType && r.Mount }

// Err returns nil when overlay is supported, else an error wrapping
// ErrNotSupported with the reason.
func (r Result) Err() error {
	if r.Supported() {
		return nil
	}
	return fmt.Errorf("%w on %s (%s): %s", ErrNotSupported, r.Dir, r.FSType, r.Reason)
}

// fsNames maps statfs f_type magic numbers to the names operators know.
var fsNames = map[int64]string{
	0xEF53:     "ext4",
	0x58465342: "xfs",
	0x9123683E: "btrfs",
	0x01021994: "tmpfs",
	0x794c7630: "overlay",
	0x6969:     "nfs",
	0x65735546: "fuse",
	0x858458f6: "ramfs",
	0x2fc12fc1: "zfs",
	0xf2f52010: "f2fs",
}

// FSName names a statfs f_type, or gives it in hex when unknown.
func FSName(magic int64) string {
	if n, ok := fsNames[magic]; ok {
		return n
	}
	return fmt.Sprintf("0x%x", magic)
}
