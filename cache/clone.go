package cache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/dindstore/dindstore/volumes"
	"golang.org/x/sys/unix"
)

// CloneResult says how a clone was made.
type CloneResult struct {
	Method   volumes.CloneMethod `json:"method"`
	Duration time.Duration       `json:"duration_ns"`
}

// quietWait is how long Clone and Promote wait for a warm cache that is
// busy (being warmed, cloned or committed to).
const quietWait = 2 * time.Minute

// Clone makes dst a private copy of the cache src, which must be quiet (not
// held: nobody writes to it), the cheapest way the host allows (see
// volumes.CloneFile). dst must not exist; like any create, its record is
// written last, and a failure leaves nothing.
func (r *Root) Clone(ctx context.Context, src, dst string) (*CloneResult, error) {
	for _, k := range []string{src, dst} {
		if err := ValidateKey(k); err != nil {
			return nil, err
		}
	}
	if src == dst {
		return nil, fmt.Errorf("%w: cannot clone %q onto itself", ErrInvalid, src)
	}
	if _, err := r.readRecord(dst); !errors.Is(err, ErrNotFound) {
		if err == nil {
			err = fmt.Errorf("%w: cache %q exists already", ErrInvalid, dst)
		}
		return nil, err
	}
	sl, err := r.lockWithin(ctx, src, quietWait)
	if err != nil {
		return nil, fmt.Errorf("clone %q: it must be quiet: %w", src, err)
	}
	defer sl.release()
	srcRec, err := r.readRecord(src)
	if err != nil {
		return nil, err
	}
	dl, err := r.tryLock(dst)
	if err != nil {
		return nil, err
	}
	defer dl.release()
	return r.cloneLocked(srcRec, dst)
}

// cloneLocked copies srcRec's cache into dst; both are locked by the caller.
func (r *Root) cloneLocked(srcRec *Record, dst string) (_ *CloneResult, retErr error) {
	if err := r.quiet(srcRec); err != nil {
		return nil, err
	}
	if srcRec.Kind == volumes.Loop {
		// Held while it is copied: no other root attaches it meanwhile.
		image, err := r.holdImage(srcRec.Key)
		if err != nil {
			return nil, err
		}
		defer image.Close()
		if err := r.checkImage(image, srcRec); err != nil {
			return nil, err
		}
	}
	if _, err := r.repairLocked(context.Background(), dst, repairOpts{}); err != nil {
		return nil, err
	}
	if err := r.removeData(dst); err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			retErr = errors.Join(retErr, r.removeData(dst), removeIfExists(r.lockPath(dst)))
		}
	}()
	start := time.Now()
	res := &CloneResult{}
	var err error
	if srcRec.Kind == volumes.Loop {
		tmp := r.imagePath(dst) + ".tmp"
		if res.Method, err = volumes.CloneFileWithin(tmp, r.imagePath(srcRec.Key), func(need int64) error {
			return r.copyFits(srcRec, need)
		}); err == nil {
			err = os.Rename(tmp, r.imagePath(dst))
		}
	} else {
		res.Method, err = volumes.CloneDir(r.dataPath(dst), r.dataPath(srcRec.Key))
	}
	if err != nil {
		return nil, err
	}
	if err := os.Mkdir(r.MountPath(dst), 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, err
	}
	res.Duration = time.Since(start)
	rec := *srcRec
	rec.Key, rec.Parent, rec.Clone, rec.CloneMethod, rec.Pinned = dst, srcRec.Key, true, res.Method, ""
	rec.Created, rec.LastUsed, rec.Hits, rec.Misses, rec.Previous = time.Now().UTC(), time.Time{}, 0, 0, nil
	// A reflink clone is made durable here (its fsync writes metadata only);
	// a copy is not fsynced (gigabytes), so its first mount checks it.
	rec.ReleasedClean = srcRec.ReleasedClean && res.Method == volumes.CloneReflink && syncFile(r.imagePath(dst)) == nil
	return res, r.writeRecord(&rec)
}

// quiet makes sure nothing writes to a source the caller has locked: not
// damaged, and a dead holder's leftovers cleared — which refuses processes
// of no lease that still use it (ErrInUse), and leaves no mount and no loop
// device on its image (a detach is confirmed).
func (r *Root) quiet(rec *Record) error {
	if err := rec.usable(); err != nil {
		return err
	}
	if p := rec.Incomplete; p != nil { // whatever else it is: a warm never finished
		return fmt.Errorf("cache %q: %w since %s (%s); run the warm again (dindstore warm %s ...)", rec.Key,
			ErrIncomplete, p.At.Format(time.RFC3339), p.Reason, rec.Key)
	}
	if _, err := r.repairLocked(context.Background(), rec.Key, repairOpts{}); err != nil {
		return fmt.Errorf("clone %q: it must be quiet: %w", rec.Key, err)
	}
	return nil
}

// lockWithin takes the lock of key, waiting up to d for a holder that is
// busy only for a moment (a clone, a commit).
func (r *Root) lockWithin(ctx context.Context, key string, d time.Duration) (*lock, error) {
	return r.lockWaiting(ctx, key, d, 100*time.Millisecond, false, func(*HeldError) bool { return true })
}

// lockWaiting takes the lock of key (for a busy step or not, see
// tryLockAs), trying again every poll, up to d, while worth says the holder
// is worth waiting for; otherwise it returns what tryLock says.
func (r *Root) lockWaiting(ctx context.Context, key string, d, poll time.Duration, busy bool, worth func(*HeldError) bool) (*lock, error) {
	deadline := time.Now().Add(d)
	for {
		l, err := r.tryLockAs(key, busy)
		var held *HeldError
		if !errors.As(err, &held) || !worth(held) || time.Now().After(deadline) {
			return l, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(poll):
		}
	}
}

// FromWarm makes key a clone of warm when key does not exist yet, counting
// a hit on warm; when warm does not exist, or a warm of it did not finish
// (ErrIncomplete), it creates key cold from spec and counts a miss for
// warm, so that the job still runs. An existing key is
// used as it is. hit tells which happened.
func (r *Root) FromWarm(ctx context.Context, key, warm string, spec Spec) (rec *Record, hit bool, err error) {
	if err := ValidateKey(warm); err != nil {
		return nil, false, err
	}
	if rec, err := r.readRecord(key); !errors.Is(err, ErrNotFound) {
		return rec, false, err
	}
	if _, err = r.readRecord(warm); err == nil {
		_, err = r.Clone(ctx, warm, key)
	}
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrIncomplete) {
		// No warm cache, or one a warm did not finish: the job starts cold.
		_ = r.addCounters(func(c *Counters) { c.addMiss(warm) })
		if _, _, err = r.Create(ctx, key, spec); err != nil {
			return nil, false, err
		}
		rec, err = r.markPerJob(key)
		return rec, false, err
	}
	if err != nil {
		return nil, false, err
	}
	_ = r.updateRecord(warm, func(rec *Record) { rec.Hits++ })
	rec, err = r.markPerJob(key)
	return rec, err == nil, err
}

// markPerJob marks key as a per-job cache and returns its record.
func (r *Root) markPerJob(key string) (*Record, error) {
	if err := r.updateRecord(key, func(rec *Record) { rec.PerJob = true }); err != nil {
		return nil, err
	}
	return r.readRecord(key)
}

// DropPerJob removes key after its use when it is a per-job cache (see
// Record.PerJob); dropped says whether it did. A committed clone is gone
// already; any other cache is kept.
func (r *Root) DropPerJob(ctx context.Context, key string) (dropped bool, err error) {
	rec, err := r.readRecord(key)
	if errors.Is(err, ErrNotFound) || (err == nil && !rec.PerJob) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, r.Remove(ctx, key)
}

// syncFile fsyncs the file at path.
func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}
