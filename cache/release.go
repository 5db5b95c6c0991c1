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
		_ = r.recoverKey(key, false) // a dead holder's leftovers, if any
		return false, nil
	}
	if owner == nil || (owner.Mode != ModePrepare && owner.Mode != ModeLaunch) {
		he := &HeldError{Key: key, PID: pid, Owner: owner}
		return false, fmt.Errorf("%w; release ends the leases of prepare and launch only", he)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return false, fmt.Errorf("ask holder pid %d of %q to release: %w", pid, key, err)
	}
	deadline := time.Now().Add(timeout)
	for {
		if held, _, _, _ := r.Holder(key); !held {
			return true, nil
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
