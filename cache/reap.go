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
// repair instead of failing (see waitReaper). A clean release, or a key
// another holder already took, leaves nothing to do.
func (r *Root) Reap(ctx context.Context, key string, holder int) ([]Finding, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	if o, err := r.readOwner(key); err != nil || o.PID != holder {
		return nil, nil // released cleanly, or taken over already
	}
	l, err := r.tryLock(key)
	if errors.Is(err, ErrLocked) {
		return nil, nil // someone else has it: it repairs what it finds
	}
	if err != nil {
		return nil, err
	}
	defer l.release()
	if err := r.markReaper(key); err != nil {
		return nil, fmt.Errorf("reap %q: %w", key, err)
	}
	defer os.Remove(r.reaperPath(key))
	return r.recoverLocked(ctx, key, false), nil
}

// markReaper writes this process's pid into the reaper marker of key.
func (r *Root) markReaper(key string) error {
	f, err := r.openOwned(r.reaperPath(key), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(strconv.Itoa(os.Getpid()))
	return errors.Join(err, f.Close())
}

func (r *Root) reaperPath(key string) string { return filepath.Join(r.path, "locks", key+".reaper") }

// reapWait bounds how long a use waits for a reaper.
const reapWait = endWait + 5*time.Second

// waitReaper takes the lock of key, waiting while the process that holds
// it is a reaper (Reap) repairing what a dead holder left; any other holder
// is ErrLocked at once, as tryLock says.
func (r *Root) waitReaper(ctx context.Context, key string) (*lock, error) {
	// PID 0: the lock was let go between our try and the look at
	// /proc/locks; try again.
	return r.lockWaiting(ctx, key, reapWait, 50*time.Millisecond, func(held *HeldError) bool {
		return held.PID == 0 || r.isReaper(key, held.PID)
	})
}

// isReaper tells whether pid is the reaper the marker of key names.
func (r *Root) isReaper(key string, pid int) bool {
	b, err := r.readSmall(r.reaperPath(key))
	return err == nil && pid > 0 && string(b) == strconv.Itoa(pid)
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
