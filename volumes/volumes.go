package volumes

import (
	"errors"
	"fmt"
	"os"

	"github.com/dindstore/dindstore/procscan"
)

// Kind is a backing kind.
type Kind string

// The backing kinds. Auto is resolved to one of the others by Decide.
const (
	Loop Kind = "loop"
	Dir  Kind = "dir"
	VFS  Kind = "vfs"
	Auto Kind = "auto"
)

// FS is the filesystem a loop image is formatted with.
type FS string

// The filesystems a loop image can carry.
const (
	Ext4 FS = "ext4"
	XFS  FS = "xfs"
)

// Size bounds for loop images. xfs refuses filesystems below 300 MiB.
const (
	MinExt4Size int64 = 64 << 20
	MinXFSSize  int64 = 300 << 20
)

var (
	// ErrInvalid marks bad input: an unknown kind or filesystem, a size out
	// of bounds. Nothing has been created when it is returned.
	ErrInvalid = errors.New("invalid argument")
	// ErrNotSupported means the backing kind cannot work on this host or
	// directory; the wrapping error says why.
	ErrNotSupported = errors.New("not supported")
	// ErrShrink means a grow was asked for a size below the current one.
	ErrShrink = errors.New("shrinking a cache is not supported")
	// ErrCheckFailed means fsck found errors it could not repair.
	ErrCheckFailed = errors.New("filesystem check failed")
)

// ParseKind parses a --kind value.
func ParseKind(s string) (Kind, error) {
	switch k := Kind(s); k {
	case Loop, Dir, VFS, Auto:
		return k, nil
	}
	return "", fmt.Errorf("%w: kind %q: want auto, loop, dir or vfs", ErrInvalid, s)
}

// ParseFS parses an --fs value.
func ParseFS(s string) (FS, error) {
	switch f := FS(s); f {
	case Ext4, XFS:
		return f, nil
	}
	return "", fmt.Errorf("%w: filesystem %q: want ext4 or xfs", ErrInvalid, s)
}

// MinSize is the smallest image the filesystem accepts.
func (f FS) MinSize() int64 {
	if f == XFS {
		return MinXFSSize
	}
	return MinExt4Size
}

// Capped reports whether the kind has a hard size cap.
func (k Kind) Capped() bool { return k == Loop }

// StorageDriver names the graph driver an inner dockerd must use on the kind.
func (k Kind) StorageDriver() string {
	if k == VFS {
		return "vfs"
	}
	return "overlay2"
}

// Mounted describes a mounted backing filesystem.
type Mounted struct {
	// Target is the mount point.
	Target string
	// Device is the loop device for loop images, empty otherwise.
	Device string
	// DirectIO is the loop device's effective direct I/O state.
	DirectIO bool
	// Repaired is what the check before the mount repaired ("" when it
	// found nothing to repair).
	Repaired string
	// watch is a descriptor on the mounted filesystem taken at mount time:
	// syncfs through it reports every write-back error since the mount
	// (a descriptor opened later sees only later errors).
	watch *os.File
}

// Decision is what Decide chose for --kind auto, and why.
type Decision struct {
	Kind Kind
	// Why lists the probes that failed before the chosen kind, empty when
	// loop worked at once.
	Why []string
}

// CloneMethod says how a cache was cloned.
type CloneMethod string

// The ways a clone is made, cheapest first.
const (
	CloneReflink    CloneMethod = "reflink"     // FICLONE: shares blocks, O(1)
	CloneSparseCopy CloneMethod = "sparse-copy" // SEEK_DATA/SEEK_HOLE + copy_file_range: O(data), keeps holes
	ClonePlainCopy  CloneMethod = "plain-copy"  // read and write, zero blocks left as holes: O(size)
	CloneTreeCopy   CloneMethod = "tree-copy"   // a dir cache's tree, file by file: O(data)
)

// ErrDamaged means a filesystem lost writes or recorded errors: it must be
// checked (fsck) before it is used again.
var ErrDamaged = errors.New("filesystem damaged")

// ErrInUse means an image (or a mount) is still used by some process or
// mount namespace, so it must not be attached, mounted, copied or removed.
var ErrInUse = errors.New("still in use")

// ImageUse is what still uses a loop image.
type ImageUse struct {
	// Image is the image's path.
	Image string
	// Devices are the loop devices bound to it.
	Devices []string
	// Users are the processes that hold its filesystem or its devices.
	Users []procscan.User
}

// InUse reports whether anything still uses the image.
func (u *ImageUse) InUse() bool { return u != nil && len(u.Devices) > 0 }
