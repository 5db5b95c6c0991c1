package cache

import (
	"context"
	"path/filepath"
	"strings"

	"github.com/dindstore/dindstore/volumes"
	"github.com/moby/sys/mountinfo"
)

// FindStrayLoop is a dindstore-tagged loop device on a file in this root's
// images/ that no cache's image is (anymore).
const FindStrayLoop = "stray-loop"

// GC removes what dindstore left behind and nothing else: everything
// Recover repairs, plus records whose image is gone and dindstore's loop
// devices on image files of this root that no cache has anymore (with the
// mounts of those devices below the root). A loop device, mount or file
// that dindstore did not make is never touched. With dryRun nothing changes.
func (r *Root) GC(ctx context.Context, dryRun bool) ([]Finding, error) {
	found, err := r.Recover(ctx, dryRun)
	if err != nil {
		return nil, err
	}
	for i, f := range found {
		if f.What == FindMissingImage {
			found[i] = r.removeRecordWithoutImage(ctx, f, dryRun)
		}
	}
	found = append(found, r.strayLoops(dryRun)...)
	found = append(found, r.removeAbandoned(ctx, dryRun)...)
	if dryRun {
		wouldBe(found)
	} else {
		var n int64
		for _, f := range found {
			if f.Err == nil && f.Action != "kept" && f.Action != "none" {
				n++
			}
		}
		if n > 0 {
			_ = r.addCounters(func(c *Counters) { c.GCRemoved += n })
		}
	}
	return found, nil
}

// removeRecordWithoutImage removes the record (and lock) of a loop cache
// whose image is gone, under the cache's lock.
func (r *Root) removeRecordWithoutImage(ctx context.Context, f Finding, dryRun bool) Finding {
	f.Action, f.Path = "removed", r.recordPath(f.Key)
	if dryRun {
		return f
	}
	// Unless it came back (or went) meanwhile.
	return r.removeIf(ctx, f, func(*Record) bool { return !exists(r.imagePath(f.Key)) })
}

// removeIf removes f's cache, under its lock, when still is true of its
// record as read under the lock; otherwise, or when the lock is held, f
// says "kept".
func (r *Root) removeIf(ctx context.Context, f Finding, still func(*Record) bool) Finding {
	l, err := r.tryLock(f.Key)
	if err != nil {
		f.Action, f.Err = "kept", err
		return f
	}
	defer l.release()
	rec, err := r.readRecord(f.Key)
	if err != nil || !still(rec) {
		f.Action = "kept"
		return f
	}
	if err := r.removeLocked(ctx, f.Key, rec); err != nil {
		f.Err = err
	}
	return f
}

// removeAbandoned removes the per-job caches whose holder died before
// their job ended (Record.Abandoned), each under its lock; one that is
// held again, or no longer marked, is left.
func (r *Root) removeAbandoned(ctx context.Context, dryRun bool) []Finding {
	keys, err := r.recordKeys()
	if err != nil {
		return []Finding{{What: FindAbandoned, Path: filepath.Join(r.path, "records"), Action: "listed", Err: err}}
	}
	var out []Finding
	for _, key := range keys {
		rec, err := r.readRecord(key)
		if err != nil || rec.Abandoned == nil {
			continue
		}
		f := Finding{Key: key, What: FindAbandoned, Path: r.backing(rec, key), Action: "removed", Note: rec.Abandoned.Reason}
		if !dryRun { // unless used again meanwhile
			f = r.removeIf(ctx, f, func(rec *Record) bool { return rec.Abandoned != nil })
		}
		out = append(out, f)
	}
	return out
}

// strayLoops finds loop devices tagged by dindstore whose backing file lies
// in this root's images/ but is no cache's current image (deleted or
// replaced), unmounts their mounts below the root and detaches them. A
// device mounted outside the root is reported and left alone.
func (r *Root) strayLoops(dryRun bool) []Finding {
	devs, err := volumes.TaggedDevices(TagPrefix)
	if err != nil {
		return nil
	}
	images := filepath.Join(r.path, "images") + "/"
	var out []Finding
	for _, d := range devs {
		if !strings.HasPrefix(d.BackingFile, images) || r.isCurrentImage(d) {
			continue
		}
		out = append(out, r.detachStray(d, dryRun))
	}
	return out
}

// isCurrentImage reports whether the device is backed by the image file
// now at its backing path (by device and inode).
func (r *Root) isCurrentImage(d volumes.LoopInfo) bool {
	found, err := volumes.ImageDevices(strings.TrimSuffix(d.BackingFile, " (deleted)"))
	if err != nil {
		return false
	}
	for _, f := range found {
		if f.Path == d.Path {
			return true
		}
	}
	return false
}

func (r *Root) detachStray(d volumes.LoopInfo, dryRun bool) Finding {
	f := Finding{What: FindStrayLoop, Path: d.Path, Action: "detached", Note: d.BackingFile}
	mounts, _ := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) { return m.Source != d.Path, false })
	for _, m := range mounts {
		if !strings.HasPrefix(m.Mountpoint, r.path+"/") {
			f.Action, f.Note = "kept", "mounted outside the root at "+m.Mountpoint
			return f
		}
	}
	if dryRun {
		return f
	}
	for _, m := range mounts {
		if err := volumes.Unmount(m.Mountpoint); err != nil {
			f.Err = err
			return f
		}
	}
	if err := volumes.DetachDevice(d, 0); err != nil {
		f.Err = err
	}
	return f
}
