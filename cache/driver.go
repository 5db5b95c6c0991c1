package cache

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dindstore/dindstore/overlay"
	"github.com/dindstore/dindstore/volumes"
)

// Storage drivers dindstore pins.
const (
	DriverOverlay2 = "overlay2"
	DriverVFS      = "vfs"
)

// ProbeStamp says where an overlay probe's answer was found: it holds for
// the cache until the boot, the kernel or the filesystem under it changes.
type ProbeStamp struct {
	BootID string `json:"boot_id"`
	Kernel string `json:"kernel"`
	FSType string `json:"fs_type"`
}

// currentStamp describes the running kernel and the filesystem at mount.
func currentStamp(mount string) (ProbeStamp, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ProbeStamp{}, err
	}
	var st unix.Statfs_t
	if err := unix.Statfs(mount, &st); err != nil {
		return ProbeStamp{}, err
	}
	return ProbeStamp{BootID: bootID(), Kernel: unix.ByteSliceToString(u.Release[:]), FSType: fmt.Sprintf("%#x", st.Type)}, nil
}

// pinDriver decides, on the mounted cache, the storage driver its inner
// daemon must use: overlay2 where a real two-lower overlay mount and d_type
// work, vfs only for a vfs cache. A loop or dir cache where overlay does not
// work is refused (ErrDriverMismatch), naming both drivers: an inner dockerd
// would otherwise fall back to vfs silently, or refuse to start much later
// with "prior storage driver overlay2 failed". The probe's answer is kept
// with its stamp: a later use with the same stamp needs no probe (probed
// is nil then).
func (r *Root) pinDriver(rec *Record, mount string) (driver string, probed *ProbeStamp, err error) {
	if rec.Kind == volumes.VFS {
		return DriverVFS, nil, nil
	}
	stamp, err := currentStamp(mount)
	if err == nil && rec.Probe != nil && *rec.Probe == stamp && rec.StorageDriver == DriverOverlay2 {
		return DriverOverlay2, nil, nil
	}
	probe, err := overlay.Probe(mount)
	if err != nil {
		return "", nil, fmt.Errorf("probe overlay on cache %q: %w", rec.Key, err)
	}
	if err := probe.Err(); err != nil {
		pinned := rec.StorageDriver
		if pinned == "" {
			pinned = DriverOverlay2
		}
		return "", nil, fmt.Errorf("%w: cache %q is pinned to %s, but %v; an inner dockerd would fall back to %s or refuse "+
			"to start (\"prior storage driver %s failed\"). Mount it on a filesystem where overlay works (ext4, xfs with "+
			"ftype=1, btrfs), or remove it and create it again with --kind vfs", ErrDriverMismatch, rec.Key, pinned, err,
			DriverVFS, pinned)
	}
	return DriverOverlay2, &stamp, nil
}

// recordUse records, in one write, that the cache is in use from now on:
// its pinned driver (and the probe's stamp when it ran), that it is no
// longer cleanly released, and what the check at mount repaired.
func (r *Root) recordUse(key, driver string, probed *ProbeStamp, repaired string) error {
	now := time.Now().UTC()
	return r.updateRecord(key, func(rec *Record) {
		rec.LastUsed, rec.StorageDriver, rec.ReleasedClean = now, driver, false
		rec.Abandoned = nil // held again
		if probed != nil {
			rec.DriverChecked, rec.Probe = now, probed
		}
		if repaired != "" {
			rec.Repaired = &Problem{Reason: repaired, At: now}
		}
	})
}
