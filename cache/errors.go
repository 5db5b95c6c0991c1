package cache

import (
	"errors"
	"fmt"

	"github.com/dindstore/dindstore/volumes"
)

var (
	// ErrInvalid marks bad input (a key, a size, a root path, options that
	// disagree with an existing cache). Nothing was created.
	ErrInvalid = errors.New("invalid argument")
	// ErrPinned marks a cache something outside dindstore owns (Pin):
	// remove it through its owner.
	ErrPinned = errors.New("cache is pinned")
	// ErrLocked means the cache is held by another process; the error is a
	// *HeldError naming the holder.
	ErrLocked = errors.New("cache is in use")
	// ErrIncomplete means a warm of the cache started and did not finish:
	// it is not served as a warm cache (clone, --from) until one does.
	ErrIncomplete = errors.New("a warm did not finish")
	// ErrNotFound means no cache has the key.
	ErrNotFound = errors.New("no such cache")
	// ErrCorruptRecord means a record or owner record could not be read
	// back (truncated, tampered with, or for another key).
	ErrCorruptRecord = errors.New("corrupt record")
	// ErrOwnerMismatch means the cache's filesystem root belongs to another
	// user than the one asked for (a rootless daemon's uid): see SetOwner.
	ErrOwnerMismatch = errors.New("cache belongs to another user")
	// ErrDriverMismatch means the storage driver the cache is pinned to
	// does not work where it is mounted now.
	ErrDriverMismatch = errors.New("storage driver mismatch")
	// ErrDamaged means the cache's filesystem lost writes or recorded
	// errors; it is refused until `dindstore repair KEY` or `rm`.
	ErrDamaged = volumes.ErrDamaged
	// ErrInUse means the cache's image is still used by processes outside
	// any live lease (or a mount dindstore did not make).
	ErrInUse = volumes.ErrInUse
)

// HeldError is returned when a cache's lock is held by someone else.
type HeldError struct {
	Key string
	// PID is the holding process as the kernel reports it (0 if unknown).
	PID int
	// Owner is the holder's owner record; nil if it could not be read (the
	// holder is between taking the lock and writing it).
	Owner *Owner
}

func (e *HeldError) Error() string {
	switch {
	case e.Owner != nil:
		return fmt.Sprintf("cache %q is in use by pid %d (%s) since %s; wait for it to end, or stop it", e.Key,
			e.Owner.PID, e.Owner.CommandLine(), e.Owner.Acquired.Format("2006-01-02T15:04:05Z07:00"))
	case e.PID > 0:
		return fmt.Sprintf("cache %q is in use by pid %d; wait for it to end, or stop it", e.Key, e.PID)
	}
	return fmt.Sprintf("cache %q is in use by another process", e.Key)
}

// Unwrap makes errors.Is(err, ErrLocked) true.
func (e *HeldError) Unwrap() error { return ErrLocked }
