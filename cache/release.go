package cache

import (
	"context"
	"fmt"
	"syscall"
	"time"
)

// ReleaseHolder ends the lease of a detached holder (prepare or launch) of
// key: it asks the holder to let go (SIGTERM) and waits, up to timeout, until
// the lock is free. Nothing held is not an error (released is false), and
// what a dead holder left is repaired. A cache held by `run` is ErrLocked:
// that lease ends with its command.
func (r *Root) ReleaseHolder(ctx context.Context, key string, timeout time.Duration) (released bool, err error) {
	if err := ValidateKey(key); err != nil {
		return false, err
	}
	held, pid, owner, err := r.Holder(key)
	if err != nil {
		return false, err
	}
	if !held {
		for _, f := range r.recoverKey(ctx, key, false) { // a dead holder's leftovers, if any
			if f.Err != nil {
				return false, fmt.Errorf("release %q: clear what its holder left: %s %s: %w", key, f.What, f.Path, f.Err)
			}
		}
		return false, nil
	}
	if owner == nil || (owner.Mode != ModePrepare && owner.Mode != ModeLaunch) {
		he := &HeldError{Key: key, PID: pid, Owner: owner}
		return false, fmt.Errorf("%w; release ends the leases of prepare and launch only", he)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return false, fmt.Errorf("ask holder pid %d of %q to release: %w", pid, key, err)
	}
	asked := time.Now().UTC()
	deadline := asked.Add(timeout)
	for {
		if held, _, _, _ := r.Holder(key); !held {
			return true, r.releaseOutcome(key, pid, asked)
		}
		if time.Now().After(deadline) {
			return false, fmt.Errorf("holder pid %d of %q did not release within %s; see %s", pid, key, timeout, r.LogPath(key))
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// releaseOutcome reads what the holder's release left in the record: a
// release that could not unmount or detach (ErrInUse, naming what holds
// it), or found the filesystem damaged (ErrDamaged).
func (r *Root) releaseOutcome(key string, pid int, since time.Time) error {
	rec, err := r.readRecord(key)
	if err != nil {
		return err
	}
	if d := rec.Damaged; d != nil && !d.At.Before(since.Truncate(time.Second)) {
		return fmt.Errorf("holder pid %d released %q, but the cache is damaged: %s: %w; check it with "+
			"`dindstore repair %s`", pid, key, d.Reason, ErrDamaged, key)
	}
	if f := rec.ReleaseFailed; f != nil && !f.At.Before(since) {
		return fmt.Errorf("holder pid %d of %q could not release it: %s: %w (pids %v); end them, then run "+
			"`dindstore recover`", pid, key, f.Reason, ErrInUse, f.PIDs)
	}
	return nil
}
