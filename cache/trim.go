package cache

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/dindstore/dindstore/volumes"
	"golang.org/x/sys/unix"
)

// TrimResult is what a trim gave back to the host.
type TrimResult struct {
	// TrimmedBytes is what the filesystem reported as discarded.
	TrimmedBytes uint64 `json:"trimmed_bytes"`
	// AllocatedBefore and AllocatedAfter are the image's st_blocks×512.
	AllocatedBefore int64 `json:"allocated_before"`
	AllocatedAfter  int64 `json:"allocated_after"`
}

// Trim gives the host back the blocks freed inside a loop cache (FITRIM).
// A cache in use is trimmed through its mount, which is safe while the
// inner daemon works; an idle one is mounted for the trim under its lock,
// without counting as a use.
func (r *Root) Trim(ctx context.Context, key string) (TrimResult, error) {
	var res TrimResult
	if err := ValidateKey(key); err != nil {
		return res, err
	}
	rec, err := r.readRecord(key)
	if err != nil {
		return res, err
	}
	if rec.Kind != volumes.Loop {
		return res, fmt.Errorf("%w: cache %q is a %s cache: its data sits on the host filesystem, there is nothing to trim", ErrInvalid, key, rec.Kind)
	}
	if res.AllocatedBefore, err = r.allocated(key); err != nil {
		return res, err
	}
	if res.TrimmedBytes, err = r.trim(ctx, rec); err != nil {
		return res, fmt.Errorf("trim cache %q: %w", key, err)
	}
	res.AllocatedAfter, err = r.allocated(key)
	return res, err
}

func (r *Root) trim(ctx context.Context, rec *Record) (uint64, error) {
	l, err := r.lockBusy(ctx, rec.Key)
	if errors.Is(err, ErrLocked) {
		return volumes.Trim(r.MountPath(rec.Key))
	}
	if err != nil {
		return 0, err
	}
	defer l.release()
	var n uint64
	err = r.withMounted(ctx, rec, func(m *volumes.Mounted, _ *os.File) (err error) {
		n, err = volumes.Trim(m.Target)
		return err
	})
	return n, err
}

// withMounted mounts an idle cache whose lock the caller holds (after
// clearing what an earlier holder left), runs fn with the mount and the
// held image (nil for other kinds than loop), and unmounts it again.
func (r *Root) withMounted(ctx context.Context, rec *Record, fn func(*volumes.Mounted, *os.File) error) error {
	if _, err := r.repairLocked(ctx, rec.Key, repairOpts{}); err != nil {
		return err
	}
	if err := r.notPulled(rec); err != nil {
		return err
	}
	m, image, err := r.mount(ctx, rec)
	if err != nil {
		return err
	}
	if image != nil {
		defer image.Close() // after the unmount
	}
	err = fn(m, image)
	if uerr := volumes.Unmount(m.Target); err == nil {
		err = uerr
	}
	return err
}

// allocated is what the cache's image takes on the host.
func (r *Root) allocated(key string) (int64, error) {
	_, allocated, _, err := fileSizes(r.imagePath(key))
	if err != nil {
		return 0, fmt.Errorf("stat image of %q: %w", key, err)
	}
	return allocated, nil
}

// fileSizes returns a file's st_size, what it allocates on the host
// (st_blocks×512), and whether it is a regular file, without following a
// link.
func fileSizes(path string) (apparent, allocated int64, regular bool, err error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return 0, 0, false, err
	}
	return st.Size, st.Blocks * 512, st.Mode&unix.S_IFMT == unix.S_IFREG, nil
}
