package cache

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/dindstore/dindstore/volumes"
)

// Repair checks and repairs a cache's filesystem for good (e2fsck -f -y for
// ext4, xfs_repair for xfs) under its lock, after clearing what an earlier
// holder left, and clears its damaged mark. It is the explicit step a
// damaged cache waits for. It returns the tool's output; a repair that
// leaves errors keeps the mark (ErrCheckFailed).
func (r *Root) Repair(ctx context.Context, key string) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	l, err := r.lockBusy(ctx, key)
	if err != nil {
		return "", err
	}
	defer l.release()
	rec, err := r.readRecord(key)
	if err != nil {
		return "", err
	}
	if _, err := r.repairLocked(ctx, key, repairOpts{}); err != nil {
		return "", err
	}
	out := fmt.Sprintf("cache %q is a %s cache: nothing to check", key, rec.Kind)
	if err := r.notPulled(rec); err != nil {
		return "", err
	}
	if rec.Kind == volumes.Loop {
		if out, err = r.repairImage(ctx, rec); err != nil {
			return out, fmt.Errorf("repair cache %q: %w", key, err)
		}
	}
	now := time.Now().UTC()
	err = r.updateRecord(key, func(rec *Record) {
		reason := "dindstore repair"
		if rec.Damaged != nil {
			reason += " of: " + rec.Damaged.Reason
		}
		rec.Damaged, rec.ReleaseFailed, rec.ReleasedClean = nil, nil, rec.Kind == volumes.Loop
		rec.Repaired = &Problem{Reason: reason, At: now}
	})
	if err == nil {
		err = r.clearDamaged(key)
	}
	return out, err
}

// repairImage repairs a loop cache's image, held (holdImage) while the
// tool runs on it, and then mounts it once: a repair is done only when the
// cache mounts again. An image that disagrees with its record (cut short,
// or replaced) cannot be repaired: the tool would "fix" a filesystem whose
// data is gone.
func (r *Root) repairImage(ctx context.Context, rec *Record) (string, error) {
	image, err := r.holdImage(rec.Key)
	if err != nil {
		return "", err
	}
	if err := r.checkImage(image, rec); err != nil {
		image.Close()
		return "", err
	}
	out, err := volumes.RepairImage(ctx, volumes.FDPath(image), rec.FS)
	image.Close()
	if err != nil {
		return out, err
	}
	probe := *rec
	probe.ReleasedClean = false // the mount checks it again
	if err := r.withMounted(ctx, &probe, func(*volumes.Mounted, *os.File) error { return nil }); err != nil {
		return out, fmt.Errorf("%w: repaired, but it still does not mount: %w", volumes.ErrCheckFailed, err)
	}
	return out, nil
}
