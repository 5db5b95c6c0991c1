package cache

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/dindstore/dindstore/volumes"
	"github.com/moby/sys/atomicwriter"
	"golang.org/x/sys/unix"
)

// recordVersion is the version of the record format this code writes.
const recordVersion = 1

// maxRecordSize bounds what is read of a record or owner record.
const maxRecordSize = 1 << 20

// Record is what dindstore knows of a cache, kept on disk as JSON.
type Record struct {
	// Version is the record format version.
	Version int `json:"version"`
	// Key names the cache; it matches the record's file name.
	Key string `json:"key"`
	// Kind is the backing kind (never auto: that is resolved on create).
	Kind volumes.Kind `json:"kind"`
	// FS is the filesystem of a loop image.
	FS volumes.FS `json:"fs,omitempty"`
	// CapBytes is a loop image's size cap; 0 for uncapped kinds.
	CapBytes int64 `json:"cap_bytes"`
	// BlockSize is the logical block size a loop image's filesystem was
	// made for (ext4's block size, xfs's sector size, at most 4096): every
	// attach uses exactly it, whatever the host filesystem's I/O alignment
	// (which a reflink changes). 0 in records of older versions: read from
	// the superblock.
	BlockSize uint32 `json:"block_size,omitempty"`
	// FSUUID is the UUID of the filesystem a loop image was made with (a
	// clone has its source's): an image holding another filesystem was
	// replaced behind dindstore's back, and is damaged.
	FSUUID string `json:"fs_uuid,omitempty"`
	// StorageDriver is the graph driver the inner daemon must use, as the
	// last probe on the mounted cache decided (see pinDriver).
	StorageDriver string `json:"storage_driver"`
	// DriverChecked is when that probe ran.
	DriverChecked time.Time `json:"driver_checked,omitempty"`
	// ImageStore is the image store the cache was first used with
	// (graphdriver or snapshotter, see overlay.DecideStore); it keeps it.
	ImageStore string `json:"image_store,omitempty"`
	// Owner is "UID:GID" that the filesystem's root was given to (a
	// rootless daemon's user), once; empty for root.
	Owner string `json:"owner,omitempty"`
	// KindReason says why auto chose a kind other than loop.
	KindReason []string `json:"kind_reason,omitempty"`
	// Created and LastUsed are UTC times.
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used,omitempty"`
	// Generation counts the generations committed into a warm cache (0
	// for a cache nothing was ever committed to).
	Generation int `json:"generation"`
	// Parent is the warm cache this one was cloned from; Clone says it is
	// a clone.
	Parent string `json:"parent,omitempty"`
	Clone  bool   `json:"clone,omitempty"`
	// CloneMethod is how the clone was made (reflink, sparse-copy, tree-copy).
	CloneMethod volumes.CloneMethod `json:"clone_method,omitempty"`
	// Pinned names what stands for the cache outside dindstore (the CSI
	// plugin's PersistentVolume or VolumeSnapshot): prune never removes a
	// pinned cache, its owner does. Empty for none; clones are not pinned.
	Pinned string `json:"pinned,omitempty"`
	// Previous lists the earlier generations of a warm cache, kept (as
	// images/KEY@gN.img or data/KEY@gN) until prune removes them.
	Previous []string `json:"previous,omitempty"`
	// Hits and Misses count warm-cache lookups.
	Hits   int64 `json:"hits"`
	Misses int64 `json:"misses"`
	// Usage is the filesystem's use as statfs saw it at the last release,
	// so that an idle cache reports it without being mounted.
	Usage *Usage `json:"usage,omitempty"`
	// Damaged is set when a release found the filesystem damaged (lost
	// writes, recorded errors): every use is refused until `dindstore
	// repair` or `rm`.
	Damaged *Problem `json:"damaged,omitempty"`
	// ReleaseFailed is set when the last release could not unmount or
	// detach the cache (something still used it); the next use clears it.
	ReleaseFailed *Problem `json:"release_failed,omitempty"`
	// Incomplete is set while a warm fills the cache, and cleared when it
	// completes: a warm killed or failed leaves it, and the cache is never
	// served as warm (StateIncomplete) until a warm completes.
	Incomplete *Problem `json:"incomplete,omitempty"`
	// Pulled names the artifact (reference@digest) the current generation
	// was pulled from, when it was; a refresh that finds the same digest
	// has nothing to do.
	Pulled string `json:"pulled,omitempty"`
	// Abandoned is set on a per-job cache whose holder died before its job
	// ended (StateAbandoned): gc removes it.
	Abandoned *Problem `json:"abandoned,omitempty"`
	// PerJob marks a cache made by --from for one job (a clone of a warm
	// cache, or a cold stand-in on a miss): its user removes it after use
	// unless it was committed or asked to keep it.
	PerJob bool `json:"per_job,omitempty"`
	// ReleasedClean says the last release unmounted the cache cleanly
	// (no damage, nothing left holding it): with a clean superblock, the
	// next mount needs no check. A fresh image is clean.
	ReleasedClean bool `json:"released_clean,omitempty"`
	// Probe stamps the overlay probe's answer (StorageDriver): it holds
	// until the boot, kernel or filesystem changes.
	Probe *ProbeStamp `json:"probe,omitempty"`
	// Repaired is the last repair: a check at mount that fixed something,
	// or `dindstore repair`.
	Repaired *Problem `json:"repaired,omitempty"`
}

// Problem is something that went wrong with a cache, and when.
type Problem struct {
	Reason string    `json:"reason"`
	PIDs   []int     `json:"pids,omitempty"`
	At     time.Time `json:"at"`
}

// usable refuses a damaged cache, saying how to get it back.
func (rec *Record) usable() error {
	if st, _ := StateOf(rec.facts()); st == StateDamaged {
		d := rec.Damaged
		return fmt.Errorf("cache %q is damaged since %s (%s): %w; check it with `dindstore repair %s`, or remove it "+
			"with `dindstore rm %s`", rec.Key, d.At.Format(time.RFC3339), d.Reason, ErrDamaged, rec.Key, rec.Key)
	}
	return nil
}

// problem records err (nil gives nil) now.
func problem(err error, pids []int) *Problem {
	if err == nil {
		return nil
	}
	return &Problem{Reason: err.Error(), PIDs: pids, At: time.Now().UTC()}
}

// Usage is a statfs of a cache's filesystem.
type Usage struct {
	FSBytes    int64     `json:"fs_bytes"`
	UsedBytes  int64     `json:"used_bytes"`
	Inodes     uint64    `json:"inodes"`
	InodesUsed uint64    `json:"inodes_used"`
	At         time.Time `json:"at"`
}

// validate refuses a record that could not have been written by dindstore.
func (rec *Record) validate(key string) error {
	if rec.Key != key {
		return fmt.Errorf("%w: record of %q holds key %q", ErrCorruptRecord, key, rec.Key)
	}
	switch rec.Kind {
	case volumes.Loop:
		if _, err := volumes.ParseFS(string(rec.FS)); err != nil || rec.CapBytes <= 0 {
			return fmt.Errorf("%w: record of %q: loop cache with fs %q and cap %d", ErrCorruptRecord, key, rec.FS, rec.CapBytes)
		}
	case volumes.Dir, volumes.VFS:
	default:
		return fmt.Errorf("%w: record of %q: kind %q", ErrCorruptRecord, key, rec.Kind)
	}
	return nil
}

// readRecord reads the record of key, without following links.
func (r *Root) readRecord(key string) (*Record, error) {
	b, err := r.readSmall(r.recordPath(key))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %q (see `dindstore ls`)", ErrNotFound, key)
	}
	if err != nil {
		return nil, err
	}
	rec, err := parseRecord(key, b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.recordPath(key), err)
	}
	if st, err := os.Lstat(r.damagedPath(key)); err == nil && rec.Damaged == nil {
		rec.Damaged = &Problem{Reason: "a release found the filesystem damaged (the host was too full to record " +
			"why; see the holder's output)", At: st.ModTime().UTC()}
	}
	return rec, nil
}

// markDamaged leaves the damage marker of key: an empty file, which needs
// no data block, so that a damage is never lost even when the host is too
// full for the record to be rewritten.
func (r *Root) markDamaged(key string) error {
	if err := r.touchOwned(r.damagedPath(key)); err != nil {
		return fmt.Errorf("mark cache %q damaged: %w", key, err)
	}
	return nil
}

// clearDamaged removes the damage marker of key.
func (r *Root) clearDamaged(key string) error {
	if err := removeIfExists(r.damagedPath(key)); err != nil {
		return fmt.Errorf("clear the damage mark of %q: %w", key, err)
	}
	return nil
}

// parseRecord decodes and validates the record of key.
func parseRecord(key string, b []byte) (*Record, error) {
	var rec Record
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorruptRecord, err)
	}
	if err := rec.validate(key); err != nil {
		return nil, err
	}
	return &rec, nil
}

// writeRecord writes the record atomically (temp file, fsync, rename).
func (r *Root) writeRecord(rec *Record) error {
	rec.Version = recordVersion
	b, err := jsonMarshal(rec)
	if err != nil {
		return err
	}
	if err := atomicwriter.WriteFile(r.recordPath(rec.Key), b, 0o600); err != nil {
		return fmt.Errorf("write record of %q: %w", rec.Key, err)
	}
	return nil
}

// updateRecord reads, changes and writes back the record of key under the
// records lock.
func (r *Root) updateRecord(key string, change func(*Record)) error {
	return r.withRecords(func() error {
		rec, err := r.readRecord(key)
		if err != nil {
			return err
		}
		change(rec)
		return r.writeRecord(rec)
	})
}

func jsonMarshal(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	return append(b, '\n'), err
}

// readSmall reads a record-sized file below the root: a regular file owned
// by this user, of at most maxRecordSize bytes, reached without following a
// link. Anything else is ErrCorruptRecord.
func (r *Root) readSmall(path string) ([]byte, error) {
	f, err := r.openOwned(path, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if errors.Is(err, ErrInvalid) {
		return nil, fmt.Errorf("%w: %w", ErrCorruptRecord, err)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxRecordSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxRecordSize {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrCorruptRecord, path, maxRecordSize)
	}
	return b, nil
}
