package cache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Reap repairs key right after its holder (pid holder) ended, as recover
// would: when the holder's owner record is still there (it did not release
// cleanly), the dead lease's processes are ended and its mount and loop
// device cleared. While it works, a marker beside the lock names this
// process, so that a use of the key that meets the lock waits for the
// repair instead of failing (see waitLock). A clean release, or a key
// another holder already took, leaves nothing to do.
func (r *Root) Reap(ctx context.Context, key string, holder int) ([]Finding, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	if o, err := r.readOwner(key); err != nil || o.PID != holder {
		return nil, nil // released cleanly, or taken over already
	}
	l, err := r.markedLock(key, func() (*lock, error) { return r.tryLockAs(key, true) })
	if errors.Is(err, ErrLocked) {
		return nil, nil // someone else has it: it repairs what it finds
	}
	if err != nil {
		return nil, err
	}
	defer l.release()
	return r.recoverLocked(ctx, key, false), nil
}

// A short step on a key that is not a lease — a guard's repair, recover,
// repair, trim, grow, a commit — marks itself busy with a file of its own
// beside the lock (locks/KEY.busy@PID, which no key can be named), made
// before it tries the lock and removed after it lets go. A use of the key
// that meets the lock held by a busy process waits for it (see
// waitLock) instead of failing; only a lease makes it fail at once.

// markBusy makes this process's busy marker of key; unmark removes it.
func (r *Root) markBusy(key string) (unmark func(), err error) {
	path := r.busyPath(key, os.Getpid())
	if err := r.touchOwned(path); err != nil {
		return nil, err
	}
	return func() { _ = os.Remove(path) }, nil // a stale marker only makes a use wait: recover removes it
}

func (r *Root) busyPath(key string, pid int) string {
	return filepath.Join(r.path, "locks", key+".busy@"+strconv.Itoa(pid))
}

// isBusy tells whether pid, which holds the lock of key, holds it for a
// busy step: its marker, or, for this process, its table (heldLocks).
func (r *Root) isBusy(key string, pid int) bool {
	if pid == os.Getpid() {
		return ownLockBusy(r.lockPath(key))
	}
	return pid > 0 && exists(r.busyPath(key, pid))
}

// lockBusy takes the lock of key for a short step that is not a lease:
// marked busy (so that uses wait for it), waiting for other busy holders.
func (r *Root) lockBusy(ctx context.Context, key string) (*lock, error) {
	return r.markedLock(key, func() (*lock, error) { return r.waitLock(ctx, key, true) })
}

// markedLock marks this process busy on key, then takes the lock with
// take; the marker goes with the lock, or at once when take fails.
func (r *Root) markedLock(key string, take func() (*lock, error)) (*lock, error) {
	unmark, err := r.markBusy(key)
	if err != nil {
		return nil, fmt.Errorf("lock %q: %w", key, err)
	}
	l, err := take()
	if err != nil {
		unmark()
		return nil, err
	}
	l.unmark = unmark
	return l, nil
}

// reapWait bounds how long a use waits for a busy holder.
const reapWait = endWait + 5*time.Second

// waitLock takes the lock of key (for a busy step, or not), waiting while
// the process that holds it is busy (a repair, recover, trim...: see
// markBusy); a lease holding it is ErrLocked at once, as tryLock says.
func (r *Root) waitLock(ctx context.Context, key string, busy bool) (*lock, error) {
	// PID 0: the lock was let go between our try and the look at
	// /proc/locks; try again.
	return r.lockWaiting(ctx, key, reapWait, 50*time.Millisecond, busy, func(held *HeldError) bool {
		return held.PID == 0 || r.isBusy(key, held.PID)
	})
}

// DeadOwner returns the owner record of key when it still names holder
// (which died without releasing: a clean release removes the record), nil
// otherwise.
func (r *Root) DeadOwner(key string, holder int) *Owner {
	o, err := r.readOwner(key)
	if err != nil || o.PID != holder {
		return nil
	}
	return o
}
