package cache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dindstore/dindstore/internal/fault"
	"github.com/dindstore/dindstore/volumes"
)

// DefaultSize is the cap of a new loop cache when no size is given.
const DefaultSize int64 = 20 << 30

// TagPrefix starts the lo_file_name tag of every loop device dindstore
// attaches.
const TagPrefix = "dindstore:"

// Spec is what a caller asks of a cache. Zero fields are unspecified: a new
// cache gets the defaults (auto, DefaultSize, ext4), an existing one keeps
// what it has, and only specified fields must agree with it.
type Spec struct {
	Kind volumes.Kind
	Size int64
	FS   volumes.FS
}

// Validate checks the spec on its own, before anything is created.
func (s Spec) Validate() error {
	if s.Kind != "" {
		if _, err := volumes.ParseKind(string(s.Kind)); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	if s.FS != "" {
		if _, err := volumes.ParseFS(string(s.FS)); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	if s.Size < 0 || s.Size > MaxSize {
		return fmt.Errorf("%w: size %d out of range", ErrInvalid, s.Size)
	}
	if s.Size > 0 && s.Size < s.fs().MinSize() {
		return fmt.Errorf("%w: size %d bytes is below the %s minimum of %d MiB", ErrInvalid, s.Size, s.fs(), s.fs().MinSize()>>20)
	}
	return nil
}

func (s Spec) fs() volumes.FS {
	if s.FS == "" {
		return volumes.Ext4
	}
	return s.FS
}

func (s Spec) size() int64 {
	if s.Size == 0 {
		return DefaultSize
	}
	return s.Size
}

// conflicts tells whether the specified fields disagree with a record.
func (s Spec) conflicts(rec *Record) error {
	var diffs []string
	if s.Kind != "" && s.Kind != volumes.Auto && s.Kind != rec.Kind {
		diffs = append(diffs, fmt.Sprintf("kind %s (it is %s)", s.Kind, rec.Kind))
	}
	if rec.Kind == volumes.Loop && s.Size != 0 && s.Size != rec.CapBytes {
		diffs = append(diffs, fmt.Sprintf("size %d (it is %d; use `dindstore grow`)", s.Size, rec.CapBytes))
	}
	if rec.Kind == volumes.Loop && s.FS != "" && s.FS != rec.FS {
		diffs = append(diffs, fmt.Sprintf("fs %s (it is %s)", s.FS, rec.FS))
	}
	if len(diffs) > 0 {
		return fmt.Errorf("%w: cache %q exists with other options: asked for %v", ErrInvalid, rec.Key, diffs)
	}
	return nil
}

// Create makes the cache key as spec says, or returns the existing record
// when a cache with that key exists and agrees with spec (an existing cache
// that disagrees is ErrInvalid). created tells which happened. A cache is
// complete once its record is written, which is the last step; a failed
// create removes what it made.
func (r *Root) Create(ctx context.Context, key string, spec Spec) (rec *Record, created bool, err error) {
	if err := ValidateKey(key); err != nil {
		return nil, false, err
	}
	if err := spec.Validate(); err != nil {
		return nil, false, err
	}
	if rec, err := r.readRecord(key); !errors.Is(err, ErrNotFound) {
		if err != nil {
			return nil, false, err
		}
		return rec, false, spec.conflicts(rec)
	}
	if spec.Kind == volumes.Loop || spec.Kind == "" || spec.Kind == volumes.Auto {
		if err := volumes.CheckSparseSize(r.tmpDir(), spec.size()); err != nil {
			return nil, false, err
		}
	}
	l, err := r.waitLock(ctx, key, false)
	if err != nil {
		return nil, false, err
	}
	defer l.release()
	if rec, err := r.readRecord(key); !errors.Is(err, ErrNotFound) {
		if err != nil {
			return nil, false, err
		}
		return rec, false, spec.conflicts(rec) // made while we waited
	}
	if rec, err = r.create(ctx, key, spec); err != nil {
		_ = os.Remove(r.lockPath(key)) // held: waiters re-open (samePath)
		return nil, false, err
	}
	return rec, true, nil
}

// create builds a new cache; the caller holds its lock.
func (r *Root) create(ctx context.Context, key string, spec Spec) (_ *Record, retErr error) {
	if err := r.clearForCreate(ctx, key); err != nil {
		return nil, err
	}
	rec := &Record{Key: key, Kind: spec.Kind, Created: time.Now().UTC()}
	if rec.Kind == "" || rec.Kind == volumes.Auto {
		d := volumes.Decide(r.tmpDir())
		rec.Kind, rec.KindReason = d.Kind, d.Why
	}
	defer func() {
		if retErr != nil {
			retErr = errors.Join(retErr, r.removeData(key))
		}
	}()
	if err := r.createBacking(ctx, rec, spec); err != nil {
		return nil, fmt.Errorf("create cache %q: %w", key, err)
	}
	rec.StorageDriver = rec.Kind.StorageDriver()
	rec.ReleasedClean = rec.Kind == volumes.Loop // a fresh mkfs is clean
	if err := r.writeRecord(rec); err != nil {
		return nil, err
	}
	if err := fault.Point("after-record"); err != nil {
		_ = os.Remove(r.recordPath(key)) // record first, then the data (deferred)
		return nil, err
	}
	return rec, nil
}

func (r *Root) createBacking(ctx context.Context, rec *Record, spec Spec) error {
	switch rec.Kind {
	case volumes.Loop:
		rec.FS, rec.CapBytes = spec.fs(), spec.size()
		if err := volumes.CreateImage(ctx, r.imagePath(rec.Key), rec.CapBytes, rec.FS); err != nil {
			return err
		}
		st, err := volumes.ReadStats(r.imagePath(rec.Key), rec.FS)
		if err != nil {
			return err
		}
		rec.FSUUID, rec.BlockSize = st.UUID, st.AttachBlockSize()
		return nil
	case volumes.Dir:
		if err := os.Mkdir(r.dataPath(rec.Key), 0o700); err != nil {
			return err
		}
		return volumes.CheckDir(r.dataPath(rec.Key))
	default:
		return os.Mkdir(r.dataPath(rec.Key), 0o700)
	}
}

// removeData removes a cache's backing data and mount point (never its
// record or lock). Whatever is mounted on the mount point or below the data
// directory is unmounted first, and the mount point is removed only when
// empty, so a removal can never reach into a mounted filesystem.
func (r *Root) removeData(key string) error {
	for _, p := range []string{r.MountPath(key), r.dataPath(key)} {
		if err := volumes.Unmount(p); err != nil {
			return err
		}
	}
	for _, p := range []string{r.imagePath(key), r.imagePath(key) + ".tmp", r.dataPath(key)} {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("remove %s: %w", p, err)
		}
	}
	if err := removeIfExists(r.MountPath(key)); err != nil {
		return fmt.Errorf("remove mount point (it should be empty once unmounted): %w", err)
	}
	return nil
}

// Remove deletes the cache key: refused with ErrLocked while it is in use.
// The record goes first, so that a removal cut short leaves data without a
// record (which create clears), never a record without data.
func (r *Root) Remove(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	l, err := r.waitLock(ctx, key, false)
	if err != nil {
		return err
	}
	defer l.release()
	rec, err := r.readRecord(key)
	if errors.Is(err, ErrNotFound) {
		_ = os.Remove(r.lockPath(key)) // the lock file tryLock just made
		return err
	} else if err != nil && !errors.Is(err, ErrCorruptRecord) {
		return err
	}
	return r.removeLocked(ctx, key, rec)
}

// RemoveUnused removes key if it was never used (no lease ever mounted it:
// its record has no last use) and nobody holds it, under its lock: for a
// command that created the cache and then failed before using it (refused
// by admission, say), so that a refused command leaves nothing behind.
// removed says whether it did.
func (r *Root) RemoveUnused(ctx context.Context, key string) (removed bool, err error) {
	if err := ValidateKey(key); err != nil {
		return false, err
	}
	l, err := r.tryLock(key)
	if err != nil {
		return false, err
	}
	defer l.release()
	rec, err := r.readRecord(key)
	if err != nil || !rec.LastUsed.IsZero() {
		return false, err
	}
	return true, r.removeLocked(ctx, key, rec)
}

// removeLocked deletes a cache whose lock the caller holds: what an earlier
// holder left mounted or attached, then the record (first), then the data,
// the earlier generations of rec (when given), the log, the owner record
// and the lock file. A record already gone is fine.
func (r *Root) removeLocked(ctx context.Context, key string, rec *Record) error {
	if _, err := r.repairLocked(ctx, key, repairOpts{}); err != nil {
		return err
	}
	if err := removeIfExists(r.recordPath(key)); err != nil {
		return fmt.Errorf("remove record of %q: %w", key, err)
	}
	if err := fault.Point("during-rm"); err != nil {
		return err // the record is gone: recover or the next create clears the data
	}
	if err := r.removeData(key); err != nil {
		return err
	}
	if rec != nil {
		r.removePrevious(rec, rec.Previous)
	}
	_ = os.Remove(r.LogPath(key))
	_ = r.removeOwner(key)
	_ = r.clearDamaged(key)
	// Unlink the lock while holding it: a waiter that opened the old file
	// sees it is gone (samePath) and locks the new one.
	return os.Remove(r.lockPath(key))
}

// Grow raises the cap of a loop cache to size bytes. An idle cache is grown
// offline under its lock; one in use is grown online, which ext4 allows only
// with CAP_SYS_RESOURCE. Shrinking is refused (volumes.ErrShrink).
func (r *Root) Grow(ctx context.Context, key string, size int64) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	rec, err := r.readRecord(key)
	if err != nil {
		return err
	}
	if rec.Kind != volumes.Loop {
		return fmt.Errorf("%w: cache %q is a %s cache, which has no size cap", ErrInvalid, key, rec.Kind)
	}
	if size < rec.CapBytes {
		return fmt.Errorf("%w: cache %q is %d bytes, asked for %d", volumes.ErrShrink, key, rec.CapBytes, size)
	}
	if size == rec.CapBytes {
		return nil
	}
	if err := volumes.CheckSparseSize(r.tmpDir(), size); err != nil {
		return err
	}
	if err := r.notPulled(rec); err != nil {
		return err
	}
	if err := r.grow(ctx, rec, size); err != nil {
		return fmt.Errorf("grow cache %q: %w", key, err)
	}
	return r.updateRecord(key, func(rec *Record) { rec.CapBytes = size })
}

func (r *Root) grow(ctx context.Context, rec *Record, size int64) error {
	l, err := r.lockBusy(ctx, rec.Key)
	if errors.Is(err, ErrLocked) {
		return r.growInUse(ctx, rec, size)
	}
	if err != nil {
		return err
	}
	defer l.release()
	if rec.FS != volumes.Ext4 {
		return r.withMounted(ctx, rec, func(m *volumes.Mounted, image *os.File) error { // xfs grows only mounted
			return volumes.GrowMounted(ctx, image, size, rec.FS, m.Device, m.Target)
		})
	}
	if _, err := r.repairLocked(ctx, rec.Key, repairOpts{}); err != nil {
		return err
	}
	image, err := r.holdImage(rec.Key)
	if err != nil {
		return err
	}
	defer image.Close()
	if err := r.checkImage(image, rec); err != nil {
		return err
	}
	return volumes.GrowImage(ctx, image, size, rec.FS)
}

// growInUse grows the image of a cache a lease holds, online.
func (r *Root) growInUse(ctx context.Context, rec *Record, size int64) error {
	dev, err := r.mountedDevice(rec.Key)
	if err != nil {
		return err
	}
	image, err := r.openImage(rec.Key)
	if err != nil {
		return err
	}
	defer image.Close()
	return volumes.GrowMounted(ctx, image, size, rec.FS, dev, r.MountPath(rec.Key))
}

// mountedDevice finds the loop device backing the cache's image, by inode.
func (r *Root) mountedDevice(key string) (string, error) {
	devs, err := volumes.ImageDevices(r.imagePath(key))
	if err != nil {
		return "", err
	}
	if len(devs) == 0 {
		return "", fmt.Errorf("cache %q is locked but its image is not attached", key)
	}
	return devs[0].Path, nil
}

// removePrevious removes earlier generations of a warm cache (file or
// directory names next to its backing, see previousName).
func (r *Root) removePrevious(rec *Record, names []string) {
	for _, n := range names {
		if path, ok := r.previousPath(rec, n); ok {
			_ = os.RemoveAll(path)
		}
	}
}

// previousPath is where the earlier generation name of rec lies, next to
// its backing; false for a name dindstore never gave (never followed out).
func (r *Root) previousPath(rec *Record, name string) (string, bool) {
	backing := r.backing(rec, rec.Key)
	if filepath.Base(name) != name || !strings.HasPrefix(name, filepath.Base(backing)+"@g") {
		return "", false
	}
	return filepath.Join(filepath.Dir(backing), name), true
}

// Exists reports whether a cache has a record under key.
func (r *Root) Exists(key string) bool {
	return ValidateKey(key) == nil && exists(r.recordPath(key))
}

// Record returns the record of key (ErrNotFound when there is none).
func (r *Root) Record(key string) (*Record, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	return r.readRecord(key)
}
