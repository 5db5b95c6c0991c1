package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/dindstore/dindstore/internal/fault"
	"github.com/dindstore/dindstore/volumes"
	"github.com/docker/go-units"
	"github.com/moby/sys/atomicwriter"
	"golang.org/x/sys/unix"
)

// ImportInfo describes an image brought in from elsewhere (a pull).
type ImportInfo struct {
	FS         volumes.FS
	ImageStore string
	Generation int
	// Source names what it came from (reference@digest), kept in the
	// record as Pulled.
	Source string
	// Size and Ranges are the image's size and data ([start, end), the
	// rest holes): a pull into an existing key wrote only what differs
	// from its image, which is applied onto it.
	Size   int64
	Ranges [][2]int64
}

// PullFill writes an image into dst, a file in the root's pulls/: empty,
// or holding what an earlier pull of the same key that was cut short
// wrote (to resume from). local, when not nil, is the key's current image,
// read-only: fill then writes into dst only what differs from it, and
// says in ImportInfo which ranges the whole image holds.
type PullFill func(dst, local *os.File) (ImportInfo, error)

// pullSwitch is the journal of a pulled generation being applied, written
// before the image is first written so that whoever takes the key's lock
// next (or recover) can finish it.
type pullSwitch struct {
	Key        string     `json:"key"`
	Generation int        `json:"generation"`
	Info       ImportInfo `json:"info"`
}

func (r *Root) pullJournal(key string) string {
	return filepath.Join(r.path, "records", ".pull-"+key)
}

// Pull makes the loop cache key, or its next generation when it exists,
// from an image fill writes apart (pulls/KEY.img, locked: one pull of a
// key at a time). A new key's image is the whole file, moved in with its
// record written last, as a create. An existing key's file holds only
// what differs from its image, applied onto it in place once it is quiet
// (a journal lets whoever takes the key's lock next, or recover, finish an
// apply cut short: the key is never seen half applied). A fill that fails
// or dies leaves the partial file (only checked chunks), which the next
// pull of the key resumes from, and the cache as it was.
func (r *Root) Pull(ctx context.Context, key string, fill PullFill) (*Record, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	if err := r.FinishPull(ctx, key); err != nil {
		return nil, err
	}
	part, err := r.openPart(key)
	if err != nil {
		return nil, err
	}
	defer part.Close()
	cur, err := r.pullBase(key)
	if err != nil {
		return nil, err
	}
	info, seen, err := r.fillPart(key, part, fill)
	if err != nil && holdsNothing(part) {
		return nil, errors.Join(err, os.Remove(r.pullPath(key))) // nothing to resume from
	}
	if err == nil {
		err = fault.Point("before-pull-switch")
	}
	if err == nil && cur == nil {
		err = r.installNew(ctx, key, part, info)
	} else if err == nil {
		err = r.installGeneration(ctx, key, info, seen)
	}
	if err != nil {
		return nil, err
	}
	return r.readRecord(key)
}

// openPart opens (or makes) the partial image of a pull of key, locked.
func (r *Root) openPart(key string) (*os.File, error) {
	f, err := r.open(r.pullPath(key), unix.O_RDWR|unix.O_CREAT|unix.O_NONBLOCK, 0o600)
	if err != nil {
		return nil, err
	}
	if err = checkImageFile(f); err == nil {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	}
	if errors.Is(err, unix.EWOULDBLOCK) {
		err = fmt.Errorf("%w: another pull of cache %q runs (it holds %s); wait for it", ErrLocked, key, f.Name())
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// pullBase is the record of key when it exists: a loop cache that is not
// damaged (a pull makes its next generation). nil when key is new.
func (r *Root) pullBase(key string) (*Record, error) {
	rec, err := r.readRecord(key)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	case rec.Kind != volumes.Loop:
		return nil, fmt.Errorf("%w: cache %q is a %s cache; a pull makes loop caches (pull into another key)",
			ErrInvalid, key, rec.Kind)
	}
	return rec, rec.usable()
}

// fillPart has fill write the partial image, with key's current image
// (when there is one) as its local source; seen is that image's stamp as
// fill began (what fill left out as the same must still be the same when
// it is applied: see installGeneration).
func (r *Root) fillPart(key string, part *os.File, fill PullFill) (info ImportInfo, seen imageStamp, err error) {
	local := r.openLocal(key)
	if local != nil {
		defer local.Close()
		if seen, err = stampOf(local); err != nil {
			return info, seen, err
		}
	}
	info, err = fill(part, local)
	return info, seen, err
}

// imageStamp tells whether an image file changed: any write, truncate or
// replacement changes its inode change time, size or inode.
type imageStamp struct {
	Ino, Size   int64
	Ctime, Nsec int64
}

func stampOf(f *os.File) (imageStamp, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return imageStamp{}, fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	return imageStamp{Ino: int64(st.Ino), Size: st.Size, Ctime: st.Ctim.Sec, Nsec: st.Ctim.Nsec}, nil
}

// unchangedSince refuses (ErrLocked: pull again) key's image when it is
// not the one fill compared against, as stamped in seen.
func (r *Root) unchangedSince(key string, seen imageStamp) error {
	img, err := r.openImage(key)
	if err != nil {
		return err
	}
	defer img.Close()
	now, err := stampOf(img)
	if err == nil && now != seen {
		err = fmt.Errorf("%w: cache %q was used or changed while it was pulled; the pull kept what it "+
			"downloaded: pull again", ErrLocked, key)
	}
	return err
}

// openLocal opens key's current image read-only, as a source of chunks:
// nil when there is none (or none dindstore would read).
func (r *Root) openLocal(key string) *os.File {
	f, err := r.open(r.imagePath(key), unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil
	}
	if checkImageFile(f) != nil {
		f.Close()
		return nil
	}
	return f
}

// installNew makes the new cache key of the partial image, whole: its
// filesystem read, then, under key's lock, the image moved in and its
// record written last.
func (r *Root) installNew(ctx context.Context, key string, part *os.File, info ImportInfo) error {
	next, err := r.importedRecord(key, part, info)
	if err != nil {
		return errors.Join(err, os.Remove(r.pullPath(key)))
	}
	l, err := r.waitLock(ctx, key, false)
	if err != nil {
		return err
	}
	defer l.release()
	if _, err := r.readRecord(key); !errors.Is(err, ErrNotFound) {
		if err == nil {
			err = fmt.Errorf("%w: cache %q was made while it was pulled; pull again (it makes the next generation)",
				ErrLocked, key)
		}
		return err
	}
	if err := r.clearForCreate(ctx, key); err != nil {
		return err
	}
	if err := os.Rename(r.pullPath(key), r.imagePath(key)); err != nil {
		return fmt.Errorf("move the pulled image of %q in: %w", key, err)
	}
	if err := r.writeRecord(next); err != nil {
		return errors.Join(err, r.removeData(key))
	}
	return nil
}

// installGeneration applies the partial image onto key's image as its
// next generation, under key's lock, once key is quiet (a use waits).
func (r *Root) installGeneration(ctx context.Context, key string, info ImportInfo, seen imageStamp) error {
	if _, err := volumes.ParseFS(string(info.FS)); err != nil || info.Size <= 0 {
		return fmt.Errorf("%w: a pulled image of %d bytes of filesystem %q", ErrInvalid, info.Size, info.FS)
	}
	l, err := r.lockWithin(ctx, key, quietWait)
	if err != nil {
		return fmt.Errorf("switch the pulled image of %q in: %w", key, err)
	}
	defer l.release()
	cur, err := r.pullBase(key)
	if err == nil && cur == nil {
		err = fmt.Errorf("%w: cache %q was removed while it was pulled; pull again", ErrNotFound, key)
	}
	if err != nil {
		return err
	}
	if _, err := r.repairLocked(ctx, key, repairOpts{}); err != nil {
		return fmt.Errorf("switch the pulled image of %q in: it must be quiet: %w", key, err)
	}
	if err := r.unchangedSince(key, seen); err != nil {
		return err
	}
	p := pullSwitch{Key: key, Generation: cur.Generation + 1, Info: info}
	if err := r.writePullJournal(p); err != nil {
		return err
	}
	if err := r.finishPullSwitch(p); err != nil {
		return fmt.Errorf("switch the pulled image of %q in (recover finishes it): %w", key, err)
	}
	return nil
}

func (r *Root) writePullJournal(p pullSwitch) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return atomicwriter.WriteFile(r.pullJournal(p.Key), b, 0o600)
}

// finishPullSwitch does (or redoes) the steps of a journaled apply; each
// can be done again. The caller holds key's lock.
func (r *Root) finishPullSwitch(p pullSwitch) error {
	if exists(r.pullPath(p.Key)) {
		if err := r.applyPart(p); err != nil {
			return err
		}
		if err := os.Remove(r.pullPath(p.Key)); err != nil {
			return err
		}
	}
	img, err := r.openImage(p.Key)
	if err != nil {
		return err
	}
	defer img.Close()
	st, err := volumes.ReadStats(volumes.FDPath(img), p.Info.FS)
	if err != nil {
		return fmt.Errorf("the pulled image of %q: %w", p.Key, err)
	}
	if err := r.updateRecord(p.Key, func(rec *Record) {
		if rec.Generation < p.Generation {
			pulledGeneration(rec, p, st)
		}
	}); err != nil {
		return err
	}
	return os.Remove(r.pullJournal(p.Key))
}

// applyPart writes the partial image's data onto key's image at the same
// offsets, makes holes where the pulled image has none, sizes it as the
// pulled image, and syncs it.
func (r *Root) applyPart(p pullSwitch) error {
	img, err := r.openImage(p.Key)
	if err != nil {
		return err
	}
	defer img.Close()
	part, err := r.open(r.pullPath(p.Key), unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer part.Close()
	fi, err := part.Stat()
	if err != nil {
		return err
	}
	changed, err := volumes.DataRanges(part, fi.Size())
	if err == nil {
		err = volumes.CopyRanges(img, part, changed)
	}
	if err == nil {
		err = fault.Point("during-pull-switch")
	}
	if err == nil {
		err = img.Truncate(p.Info.Size)
	}
	if err == nil {
		err = volumes.PunchOutside(img, p.Info.Size, p.Info.Ranges)
	}
	if err != nil {
		return fmt.Errorf("apply the pulled image onto %s: %w", img.Name(), err)
	}
	return img.Sync()
}

// pulledGeneration makes rec the record of the pulled image as generation
// p.Generation: what the image holds comes from the pull and its
// superblock, what dindstore knows of the key (its name, counters) stays.
func pulledGeneration(rec *Record, p pullSwitch, st volumes.Stats) {
	rec.FS, rec.CapBytes, rec.BlockSize, rec.FSUUID = p.Info.FS, p.Info.Size, st.AttachBlockSize(), st.UUID
	rec.ImageStore, rec.Pulled, rec.StorageDriver = p.Info.ImageStore, p.Info.Source, volumes.Loop.StorageDriver()
	rec.Generation, rec.LastUsed, rec.Usage = p.Generation, time.Now().UTC(), nil
	rec.Incomplete, rec.ReleaseFailed, rec.Probe, rec.DriverChecked = nil, nil, nil, time.Time{}
	rec.ReleasedClean = true
}

// FinishPull finishes a pull of key whose switch was cut short, if any,
// so that key's record says what its image is: a pull starts with it
// (taking key's lock finishes it, see finishCutSwitch).
func (r *Root) FinishPull(ctx context.Context, key string) error {
	if !exists(r.pullJournal(key)) {
		return nil
	}
	l, err := r.lockWithin(ctx, key, quietWait)
	if err != nil {
		return err
	}
	l.release()
	return nil
}

// finishCutSwitch finishes a pulled generation's switch of key that was
// cut short, if any: whoever takes key's lock does it first, so that no
// holder of the lock ever sees a record and an image from two generations.
func (r *Root) finishCutSwitch(key string) error {
	if !exists(r.pullJournal(key)) {
		return nil
	}
	if err := r.redoPullSwitch(key); err != nil {
		return fmt.Errorf("finish the pull of %q that was cut short: %w", key, err)
	}
	return nil
}

// redoPullSwitch finishes the journaled switch of key; the caller holds
// key's lock.
func (r *Root) redoPullSwitch(key string) error {
	b, err := r.readSmall(r.pullJournal(key))
	if errors.Is(err, os.ErrNotExist) {
		return nil // finished meanwhile
	}
	var p pullSwitch
	if err == nil {
		err = json.Unmarshal(b, &p)
	}
	if err != nil {
		return fmt.Errorf("the journal of a pull of %q: %w", key, err)
	}
	_, err = r.readRecord(key)
	if errors.Is(err, ErrNotFound) { // removed since: nothing to switch
		return os.Remove(r.pullJournal(key))
	}
	if err != nil {
		return err
	}
	return r.finishPullSwitch(p)
}

// recoverPulls finishes every pull switch cut short (rolls forward).
func (r *Root) recoverPulls(dryRun bool) []Finding {
	journals, _ := filepath.Glob(filepath.Join(r.path, "records", ".pull-*"))
	var out []Finding
	for _, j := range journals {
		key := filepath.Base(j)[len(".pull-"):]
		f := Finding{Key: key, What: FindPullCut, Path: j, Action: "completed"}
		if ValidateKey(key) != nil {
			continue
		}
		if !dryRun {
			f.Err = r.finishLocked(key)
		}
		out = append(out, f)
	}
	return out
}

func (r *Root) finishLocked(key string) error {
	l, err := r.tryLock(key) // which finishes it
	if err != nil {
		return err
	}
	l.release()
	return nil
}

// FindPullCut is a pulled generation whose switch was cut short: recover
// finishes it.
const FindPullCut = "pull-cut"

// stalePulls are partial pulls nobody resumed for this long: gc removes
// them (an image's worth of disk each).
const stalePulls = 24 * time.Hour

// stalePull tells a partial pull nobody resumed for stalePulls, and that
// no pull holds now.
func stalePull(path string, info os.FileInfo) bool {
	if time.Since(info.ModTime()) < stalePulls || !info.Mode().IsRegular() {
		return false
	}
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	return unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil
}

// notPulled clears the Pulled mark of rec's cache, whose lock the caller
// holds, before its image changes (a mount, a grow, a repair): the mark
// says the image is that artifact byte for byte, which lets a pull compare
// chunk tables instead of reading the image. The record on disk decides
// (rec may have been read before the lock was taken).
func (r *Root) notPulled(rec *Record) error {
	cur, err := r.readRecord(rec.Key)
	if err != nil || cur.Pulled == "" {
		return err
	}
	rec.Pulled = ""
	return r.updateRecord(rec.Key, func(rec *Record) { rec.Pulled = "" })
}

// CheckPullRoom refuses (ErrNoRoom) a pull that would write data bytes of
// an image of size bytes where the host filesystem under the root cannot
// take them and still keep 5% free, or cannot hold a sparse file that
// large: before anything is written.
func (r *Root) CheckPullRoom(size, data int64) error {
	if size <= 0 || size > MaxSize {
		return fmt.Errorf("%w: an image of %d bytes", ErrInvalid, size)
	}
	if err := volumes.CheckSparseSize(r.tmpDir(), size); err != nil {
		return fmt.Errorf("%w: %w", ErrNoRoom, err)
	}
	free, total, _, _, err := r.hostStat()
	if err != nil {
		return err
	}
	if floor := int64(float64(total) * DefaultKeepFree); data > free-floor {
		return fmt.Errorf("%w: the pull writes %s of image data; the host filesystem under %s has %s free, "+
			"of which %s is kept free: prune (dindstore prune) or free room, then pull again", ErrNoRoom,
			units.BytesSize(float64(data)), r.path, units.BytesSize(float64(free)), units.BytesSize(float64(floor)))
	}
	return nil
}

// holdsNothing tells a partial image without any data.
func holdsNothing(part *os.File) bool {
	fi, err := part.Stat()
	if err != nil {
		return false
	}
	data, err := volumes.DataRanges(part, fi.Size())
	return err == nil && len(data) == 0
}
