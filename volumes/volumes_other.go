//go:build !linux

package volumes

import (
	"context"
	"fmt"
	"github.com/dindstore/dindstore/procscan"
	"os"
	"runtime"
	"time"
)

var errPlatform = fmt.Errorf("%w: dindstore backs inner daemons on Linux only, not %s", ErrNotSupported, runtime.GOOS)

// CreateImage is not supported on this platform.
func CreateImage(context.Context, string, int64, FS) error { return errPlatform }

// CheckImage is not supported on this platform.
func CheckImage(context.Context, string, FS) (string, error) { return "", errPlatform }

// CheckSparseSize is not supported on this platform.
func CheckSparseSize(string, int64) error { return errPlatform }

// GrowMounted is not supported on this platform.
func GrowMounted(context.Context, *os.File, int64, FS, string, string) error { return errPlatform }

// GrowImage is not supported on this platform.
func GrowImage(context.Context, *os.File, int64, FS) error { return errPlatform }

// MountImage is not supported on this platform.
func MountImage(context.Context, string, string, FS, string) (*Mounted, error) {
	return nil, errPlatform
}

// Bind is not supported on this platform.
func Bind(string, string) (*Mounted, error) { return nil, errPlatform }

// UnmountBind is not supported on this platform.
func UnmountBind(string) error { return errPlatform }

// IsMounted is not supported on this platform.
func IsMounted(string) (bool, error) { return false, errPlatform }

// Trim is not supported on this platform.
func Trim(string) (uint64, error) { return 0, errPlatform }

// Unmount is not supported on this platform.
func Unmount(string) error { return errPlatform }

// CheckDir is not supported on this platform.
func CheckDir(string) error { return errPlatform }

// LoopWorks is not supported on this platform.
func LoopWorks(string) error { return errPlatform }

// Decide resolves auto to vfs on this platform.
func Decide(string) Decision { return Decision{Kind: VFS, Why: []string{errPlatform.Error()}} }

// CloneFile is not supported on this platform.
func CloneFile(string, string) (CloneMethod, error) { return "", errPlatform }

// CloneFileWithin is not supported on this platform.
func CloneFileWithin(string, string, func(int64) error) (CloneMethod, error) { return "", errPlatform }

// CloneDir is not supported on this platform.
func CloneDir(string, string) (CloneMethod, error) { return "", errPlatform }

// FindImageUse is not supported on this platform.
func FindImageUse(string, string) (*ImageUse, error) { return nil, errPlatform }

// BoundImages is not supported on this platform.
func BoundImages(string) (map[string][]string, error) { return nil, errPlatform }

// Watch is not supported on this platform.
func (m *Mounted) Watch() error { return errPlatform }

// Health is not supported on this platform.
func (m *Mounted) Health() error { return errPlatform }

// CloseWatch does nothing on this platform.
func (m *Mounted) CloseWatch() {}

// RepairImage is not supported on this platform.
func RepairImage(context.Context, string, FS) (string, error) { return "", errPlatform }

// MountOptions tune MountImageWith.
type MountOptions struct {
	ReleasedClean, Unbound bool
	BlockSize              uint32
	Backing                *os.File
}

// MountImageWith is not supported on this platform.
func MountImageWith(context.Context, string, string, FS, string, MountOptions) (*Mounted, error) {
	return nil, errPlatform
}

// UnmountNoTrim is not supported on this platform.
func UnmountNoTrim(string) error { return errPlatform }

// ImageDevices is not supported on this platform.
func ImageDevices(string) ([]LoopInfo, error) { return nil, errPlatform }

// TaggedDevices is not supported on this platform.
func TaggedDevices(string) ([]LoopInfo, error) { return nil, errPlatform }

// DetachDevice is not supported on this platform.
func DetachDevice(LoopInfo, time.Duration) error { return errPlatform }

// FileExtents is not supported on this platform.
func FileExtents(string) (uint64, []Extent, error) { return 0, nil, errPlatform }

// FindDirUse is not supported on this platform.
func FindDirUse(string, string) ([]procscan.User, error) { return nil, errPlatform }

// DataRanges is the whole file on this platform (no SEEK_DATA here).
func DataRanges(_ *os.File, size int64) ([][2]int64, error) {
	if size <= 0 {
		return nil, nil
	}
	return [][2]int64{{0, size}}, nil
}

// CopyRanges is not supported on this platform.
func CopyRanges(*os.File, *os.File, [][2]int64) error { return errPlatform }

// PunchHole writes n zero bytes at off (no holes made here).
func PunchHole(f *os.File, off, n int64) error {
	zero := make([]byte, min(n, 1<<20))
	for n > 0 {
		k := min(n, int64(len(zero)))
		if _, err := f.WriteAt(zero[:k], off); err != nil {
			return err
		}
		off, n = off+k, n-k
	}
	return nil
}

// StartWriteback does nothing on this platform.
func StartWriteback(*os.File, int64, int64) {}
