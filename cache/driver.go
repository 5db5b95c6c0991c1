package cache

import (
	"fmt"
	"time"

	"github.com/dindstore/dindstore/overlay"
	"github.com/dindstore/dindstore/volumes"
)

// Storage drivers dindstore pins.
const (
	DriverOverlay2 = "overlay2"
	DriverVFS      = "vfs"
)

// pinDriver decides, on the mounted cache, the storage driver its inner
// daemon must use: overlay2 where a real two-lower overlay mount and d_type
// work, vfs only for a vfs cache. A loop or dir cache where overlay does not
// work is refused (ErrDriverMismatch), naming both drivers: an inner dockerd
// would otherwise fall back to vfs silently, or refuse to start much later
// with "prior storage driver overlay2 failed".
func (r *Root) pinDriver(rec *Record, mount string) (string, error) {
	if rec.Kind == volumes.VFS {
		return DriverVFS, nil
	}
	probe, err := overlay.Probe(mount)
	if err != nil {
		return "", fmt.Errorf("probe overlay on cache %q: %w", rec.Key, err)
	}
	if err := probe.Err(); err != nil {
		pinned := rec.StorageDriver
		if pinned == "" {
			pinned = DriverOverlay2
		}
		return "", fmt.Errorf("%w: cache %q is pinned to %s, but %v; an inner dockerd would fall back to %s or refuse "+
			"to start (\"prior storage driver %s failed\"). Mount it on a filesystem where overlay works (ext4, xfs with "+
			"ftype=1, btrfs), or remove it and create it again with --kind vfs", ErrDriverMismatch, rec.Key, pinned, err,
			DriverVFS, pinned)
	}
	return DriverOverlay2, nil
}

// recordDriver stores the pinned driver and when it was checked.
func (r *Root) recordDriver(key, driver string) error {
	now := time.Now().UTC()
	return r.updateRecord(key, func(rec *Record) {
		rec.StorageDriver, rec.DriverChecked = driver, now
	})
}
