package cache

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/moby/sys/atomicwriter"
	"golang.org/x/sys/unix"
)

// lock is a held exclusive flock on a cache's lock file. The descriptor is
// close-on-exec, so commands started while it is held do not inherit it.
type lock struct {
	f    *os.File
	path string
	// unmark, when set, removes this process's busy marker of the key once
	// the flock is dropped (see lockBusy).
	unmark func()
}

// release drops the flock (closing the descriptor releases it).
func (l *lock) release() error {
	heldLocks.Lock()
	delete(heldLocks.busy, l.path)
	heldLocks.Unlock()
	err := l.f.Close()
	if l.unmark != nil {
		l.unmark()
	}
	return err
}

// heldLocks are the key locks this process holds, by lock path, and
// whether each is held for a busy step (see markBusy). A flock belongs to
// an open file, so a process meets its own locks too (a CSI plugin holds
// leases and runs recover): the busy marker files, named by pid, cannot
// tell its leases from its busy steps; this can.
var heldLocks = struct {
	sync.Mutex
	busy map[string]bool
}{busy: map[string]bool{}}

// ownLockBusy tells whether this process holds path for a busy step; a
// lock held by this process but not (yet) in the table is one being taken
// this instant, worth trying again.
func ownLockBusy(path string) bool {
	heldLocks.Lock()
	defer heldLocks.Unlock()
	busy, ok := heldLocks.busy[path]
	return !ok || busy
}

// lockAttempts bounds the retries when rm unlinks a lock file between our
// open and our flock.
const lockAttempts = 8

// tryLock takes the lock of key without waiting. A lock held elsewhere is a
// *HeldError (errors.Is ErrLocked) naming the holder from its owner record.
func (r *Root) tryLock(key string) (*lock, error) { return r.tryLockAs(key, false) }

// tryLockAs is tryLock that records the lock as held for a busy step or
// not (see heldLocks).
func (r *Root) tryLockAs(key string, busy bool) (*lock, error) {
	path := r.lockPath(key)
	for i := 0; i < lockAttempts; i++ {
		f, err := r.openLockFile(path)
		if err != nil {
			return nil, err
		}
		if err := flock(f, unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, r.heldError(key)
			}
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if samePath(f, path) {
			heldLocks.Lock()
			heldLocks.busy[path] = busy
			heldLocks.Unlock()
			l := &lock{f: f, path: path}
			if err := r.finishCutSwitch(key); err != nil {
				l.release()
				return nil, err
			}
			return l, nil
		}
		f.Close() // the file was unlinked by rm meanwhile: lock the new one
	}
	return nil, fmt.Errorf("lock %s: the lock file kept changing under us", path)
}

// openLockFile opens (creating) a lock file below the root, refusing a
// symlink, a FIFO or a file of another user in its place.
func (r *Root) openLockFile(path string) (*os.File, error) {
	f, err := r.openOwned(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	return f, nil
}

// lockWait takes an exclusive flock on path, waiting for it.
func (r *Root) lockWait(path string) (*lock, error) {
	f, err := r.openLockFile(path)
	if err != nil {
		return nil, err
	}
	if err := flock(f, unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return &lock{f: f}, nil
}

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			return err
		}
	}
}

// samePath reports whether the open file is still the one at path.
func samePath(f *os.File, path string) bool {
	var a, b unix.Stat_t
	if unix.Fstat(int(f.Fd()), &a) != nil || unix.Lstat(path, &b) != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

// fileID names a file as /proc/locks does.
type fileID struct {
	major, minor uint32
	ino          uint64
}

// Holder tells whether the cache's lock is held right now, and by whom,
// without taking it (which could make a concurrent run fail): the kernel's
// /proc/locks is asked about the lock file's inode. pid is the holder's
// process as the kernel knows it; owner is its owner record, only when that
// record names the same live process (a holder may be between taking the
// lock and writing it, and a dead holder's record may still be there).
func (r *Root) Holder(key string) (held bool, pid int, owner *Owner, err error) {
	flocks, err := readFlocks()
	if err != nil {
		return false, 0, nil, err
	}
	return r.holder(key, flocks)
}

// holder is Holder with /proc/locks already read.
func (r *Root) holder(key string, flocks map[fileID]int) (held bool, pid int, owner *Owner, err error) {
	var st unix.Stat_t
	if err := unix.Lstat(r.lockPath(key), &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, 0, nil, nil
		}
		return false, 0, nil, fmt.Errorf("stat lock of %q: %w", key, err)
	}
	pid, held = flocks[fileID{unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev)), st.Ino}]
	if !held {
		return false, 0, nil, nil
	}
	if o, err := r.readOwner(key); err == nil && o.PID == pid && o.Alive() {
		owner = o
	}
	return true, pid, owner, nil
}

// heldError describes the holder of a lock we could not take.
func (r *Root) heldError(key string) error {
	_, pid, owner, _ := r.Holder(key)
	return &HeldError{Key: key, PID: pid, Owner: owner}
}

// writeOwner records who holds the lock of key.
func (r *Root) writeOwner(key string, o *Owner) error {
	b, err := jsonMarshal(o)
	if err != nil {
		return err
	}
	if err := atomicwriter.WriteFile(r.ownerPath(key), b, 0o600); err != nil {
		return fmt.Errorf("write owner record of %q: %w", key, err)
	}
	return nil
}

// readOwner reads the owner record of key.
func (r *Root) readOwner(key string) (*Owner, error) {
	b, err := r.readSmall(r.ownerPath(key))
	if err != nil {
		return nil, err
	}
	return parseOwner(b)
}

// removeOwner removes the owner record; a missing one is fine.
func (r *Root) removeOwner(key string) error {
	if err := removeIfExists(r.ownerPath(key)); err != nil {
		return fmt.Errorf("remove owner record of %q: %w", key, err)
	}
	return nil
}

// withRecords runs fn holding the root-wide lock that serialises
// read-modify-write of records (a holder's release and a concurrent grow).
func (r *Root) withRecords(fn func() error) error {
	l, err := r.lockWait(filepath.Join(r.path, "locks", ".records"))
	if err != nil {
		return err
	}
	defer l.release()
	return fn()
}
