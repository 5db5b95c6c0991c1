package cache

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/containerd/continuity/fs"
	"github.com/dindstore/dindstore/dockerd"
	"github.com/dindstore/dindstore/volumes"
)

// States a cache can be in.
const (
	StateIdle  = "idle"
	StateInUse = "in-use"
	// StateOrphaned: no live lease, but a loop device is still bound to the
	// image (processes of a dead lease, or of no lease, still use it).
	StateOrphaned = "orphaned"
	// StateReleaseFailed: the last release could not unmount or detach.
	StateReleaseFailed = "release-failed"
	// StateDamaged: a release found the filesystem damaged; refused until
	// `dindstore repair` or `rm`.
	StateDamaged = "damaged"
	// StateIncomplete: a warm started on the cache and did not finish
	// (killed, or failed): it holds part of what it should, and is never
	// served as a warm cache (--from starts cold) until a warm completes.
	StateIncomplete = "incomplete"
	// StateAbandoned: a per-job cache (made by --from) whose holder died
	// before its job ended; gc removes it.
	StateAbandoned = "abandoned"
)

// States lists every state, for reports and metrics.
var States = []string{StateIdle, StateInUse, StateOrphaned, StateReleaseFailed, StateDamaged, StateIncomplete,
	StateAbandoned}

// Where an entry's used bytes and inodes come from.
const (
	UsageStatfs     = "statfs"     // the mounted filesystem, now
	UsageRelease    = "release"    // statfs at the last release (the cache is idle since)
	UsageSuperblock = "superblock" // the unmounted image's superblock (includes metadata)
	UsageWalk       = "walk"       // a walk of a dir or vfs cache (--deep)
)

// Entry is one cache as `dindstore ls` shows it.
type Entry struct {
	Key  string       `json:"key"`
	Kind volumes.Kind `json:"kind"`
	FS   volumes.FS   `json:"fs,omitempty"`
	// CapBytes is the size cap (0 for uncapped kinds).
	CapBytes int64 `json:"cap_bytes"`
	// ApparentBytes is the image's st_size (loop caches).
	ApparentBytes int64 `json:"apparent_bytes"`
	// AllocatedBytes is what the image takes on the host (st_blocks×512),
	// its kept earlier generations included (PreviousBytes); for dir and
	// vfs caches, the walked usage (--deep only).
	AllocatedBytes int64 `json:"allocated_bytes"`
	// SharedBytes is the part of AllocatedBytes that shares blocks with
	// other files (reflink clones, generations): Summarize counts those
	// blocks once across caches.
	SharedBytes int64 `json:"shared_bytes"`
	shared      []volumes.Extent
	// UsedBytes and Inodes describe the filesystem inside; UsageSource
	// says where they come from.
	UsedBytes   int64  `json:"used_bytes"`
	FSBytes     int64  `json:"fs_bytes"`
	Inodes      uint64 `json:"inodes"`
	InodesUsed  uint64 `json:"inodes_used"`
	UsageSource string `json:"usage_source,omitempty"`
	// State is idle, in-use, orphaned, release-failed or damaged; Reason
	// and PIDs say why and who for the last three.
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	PIDs   []int  `json:"pids,omitempty"`
	// HolderPID is the pid holding the cache, 0 when idle.
	HolderPID int `json:"holder_pid"`
	// Created and LastUsed are RFC 3339 times; LastUsed is null until the
	// cache is first used.
	Created  time.Time  `json:"created"`
	LastUsed *time.Time `json:"last_used"`
	// Hits and Misses count warm-cache lookups.
	Hits   int64 `json:"hits"`
	Misses int64 `json:"misses"`
	// Generation, Parent and Clone place the cache among warm caches.
	Generation int    `json:"generation"`
	Parent     string `json:"parent,omitempty"`
	Clone      bool   `json:"clone"`
	// Pinned names what owns the cache outside dindstore; prune passes it.
	Pinned string `json:"pinned,omitempty"`
	// PreviousGenerations counts the earlier generations kept, and
	// PreviousBytes is what they take on the host (their images' allocated
	// bytes; dir caches' only with --deep). Blocks they share with the
	// current generation count once in the totals.
	PreviousGenerations int   `json:"previous_generations"`
	PreviousBytes       int64 `json:"previous_bytes"`
	// StorageDriver is the driver the inner daemon must use; ImageStore
	// the store it holds (graphdriver or snapshotter, "" while unknown).
	StorageDriver string `json:"storage_driver"`
	ImageStore    string `json:"image_store,omitempty"`
	// Owner is "UID:GID" when the cache was given to a rootless daemon's
	// user (see Lease.SetOwner).
	Owner string `json:"owner,omitempty"`
	// Error is set when the cache's record or data could not be read.
	Err error `json:"-"`
}

// ListOptions tune List.
type ListOptions struct {
	// Deep walks dir and vfs caches for their disk usage (continuity's
	// DiskUsage, hard links counted once). Off by default: the default view
	// only stats and statfs, so that hundreds of caches list at once.
	Deep bool
}

// recordKeys lists the keys that have a record, sorted (temp files of
// atomic writes and strangers in records/ are skipped).
func (r *Root) recordKeys() ([]string, error) {
	names, err := os.ReadDir(filepath.Join(r.path, "records"))
	if err != nil {
		return nil, fmt.Errorf("list records: %w", err)
	}
	var keys []string
	for _, n := range names {
		if key, ok := strings.CutSuffix(n.Name(), ".json"); ok && ValidateKey(key) == nil {
			keys = append(keys, key)
		}
	}
	return keys, nil
}

// Keys lists the caches' keys, sorted, reading nothing but records/.
func (r *Root) Keys() ([]string, error) { return r.recordKeys() }

// List returns one entry per cache, sorted by key. It never takes a lock,
// so it cannot make a concurrent run fail.
func (r *Root) List(ctx context.Context, opts ListOptions) ([]Entry, error) {
	keys, err := r.recordKeys()
	if err != nil {
		return nil, err
	}
	flocks, err := readFlocks()
	if err != nil {
		return nil, fmt.Errorf("read /proc/locks: %w", err)
	}
	counters, _ := r.Counters()
	bound, err := volumes.BoundImages(filepath.Join(r.path, "images"))
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, key := range keys {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		e := r.entry(ctx, key, flocks, bound, opts)
		e.Misses += counters.WarmMisses[key] // asked for while it did not exist
		out = append(out, e)
	}
	return out, nil // ReadDir sorts by name: by key
}

// facts gathers what StateOf needs of key: flocks and bound are the
// lock holders and bound images read once for a whole listing.
func (r *Root) facts(rec *Record, held bool, bound map[string][]string) Facts {
	f := rec.facts()
	f.Held, f.Bound = held, bound[r.imagePath(rec.Key)]
	return f
}

// setState sets the entry's state from the facts, naming the processes
// that still use an orphaned cache.
func (r *Root) setState(e *Entry, f Facts, rec *Record) {
	e.State, e.Reason = StateOf(f)
	switch e.State {
	case StateOrphaned:
		if use, err := volumes.FindImageUse(r.imagePath(e.Key), r.MountPath(e.Key)); err == nil && len(use.Users) > 0 {
			e.Reason, e.PIDs = (&volumes.ImageInUseError{Use: use}).Error(), processPIDs(use)
		}
	case StateReleaseFailed:
		e.PIDs = rec.ReleaseFailed.PIDs
	}
}

// entry builds the list entry of key; bound maps images to the loop
// devices bound to them (volumes.BoundImages), for the problem states.
func (r *Root) entry(ctx context.Context, key string, flocks map[fileID]int, bound map[string][]string, opts ListOptions) Entry {
	e := Entry{Key: key, State: StateIdle}
	rec, err := r.readRecord(key)
	if err != nil {
		e.Err = err
		return e
	}
	e.Kind, e.FS, e.CapBytes, e.Created = rec.Kind, rec.FS, rec.CapBytes, rec.Created
	e.StorageDriver, e.ImageStore = dockerd.DriverFor(rec.ImageStore, rec.StorageDriver), rec.ImageStore
	e.Owner, e.Pinned = rec.Owner, rec.Pinned
	e.Hits, e.Misses = rec.Hits, rec.Misses
	e.Generation, e.Parent, e.Clone, e.PreviousGenerations = rec.Generation, rec.Parent, rec.Clone, len(rec.Previous)
	if !rec.LastUsed.IsZero() {
		t := rec.LastUsed
		e.LastUsed = &t
	}
	held, pid, _, err := r.holder(key, flocks)
	if err != nil {
		e.Err = err
	}
	if held {
		e.HolderPID = pid
	}
	if err := r.usage(ctx, rec, held, opts, &e); err != nil {
		e.Err = err
	}
	r.setState(&e, r.facts(rec, held, bound), rec)
	return e
}

// usage fills the sizes of an entry without walking any tree, unless
// opts.Deep asks for a walk of a dir or vfs cache.
func (r *Root) usage(ctx context.Context, rec *Record, held bool, opts ListOptions, e *Entry) error {
	if rec.Kind != volumes.Loop {
		if !opts.Deep {
			return nil
		}
		// The data directory, not the mount: the inner daemon's own mounts
		// hang below the mount, never below the data directory.
		u, err := fs.DiskUsage(ctx, r.dataPath(rec.Key))
		if err != nil {
			return fmt.Errorf("disk usage: %w", err)
		}
		e.AllocatedBytes, e.UsedBytes, e.InodesUsed, e.UsageSource = u.Size, u.Size, uint64(u.Inodes), UsageWalk
		return nil
	}
	apparent, allocated, regular, err := fileSizes(r.imagePath(rec.Key))
	switch {
	case err != nil:
		return fmt.Errorf("stat image of %q: %w", rec.Key, err)
	case !regular:
		// A link or FIFO put there behind dindstore's back: never read through.
		return fmt.Errorf("%w: the image %s of %q is not a regular file", ErrInvalid, r.imagePath(rec.Key), rec.Key)
	}
	e.ApparentBytes, e.AllocatedBytes = apparent, allocated
	if e.AllocatedBytes > 0 {
		if _, shared, err := volumes.FileExtents(r.imagePath(rec.Key)); err == nil && len(shared) > 0 {
			e.shared, e.SharedBytes = shared, int64(volumes.UnionBytes(shared))
		}
	}
	r.previousUsage(rec, e)
	return r.loopUsage(rec, held, e)
}

// previousUsage adds the kept earlier generations of a loop cache to the
// entry: their allocated bytes in PreviousBytes, the extents they share
// (with the current generation, or each other) to the entry's shared ones.
func (r *Root) previousUsage(rec *Record, e *Entry) {
	for _, name := range rec.Previous {
		path, ok := r.previousPath(rec, name)
		if !ok {
			continue
		}
		_, allocated, regular, err := fileSizes(path)
		if err != nil || !regular || allocated == 0 {
			continue
		}
		if _, shared, err := volumes.FileExtents(path); err == nil && len(shared) > 0 {
			e.shared = append(e.shared, shared...)
			e.SharedBytes += int64(volumes.UnionBytes(shared))
		}
		e.PreviousBytes += allocated
		e.AllocatedBytes += allocated
	}
}

// loopUsage fills used bytes and inodes of a loop cache: statfs while it is
// mounted, the figures of its last release while idle, else its superblock.
func (r *Root) loopUsage(rec *Record, held bool, e *Entry) error {
	var u *Usage
	switch {
	case held:
		u, e.UsageSource = r.mountedUsage(rec.Key), UsageStatfs
	case rec.Usage != nil:
		u, e.UsageSource = rec.Usage, UsageRelease
	}
	if u == nil {
		st, err := volumes.ReadStats(r.imagePath(rec.Key), rec.FS)
		if err != nil {
			return err
		}
		u = &Usage{FSBytes: st.SizeBytes, UsedBytes: st.UsedBytes, Inodes: st.Inodes, InodesUsed: st.Inodes - st.InodesFree}
		e.UsageSource = UsageSuperblock
	}
	e.UsedBytes, e.FSBytes, e.Inodes, e.InodesUsed = u.UsedBytes, u.FSBytes, u.Inodes, u.InodesUsed
	return nil
}

// mountedUsage is a statfs of the cache's mount, nil when it is not (yet)
// mounted.
func (r *Root) mountedUsage(key string) *Usage {
	if m, err := volumes.IsMounted(r.MountPath(key)); err != nil || !m {
		return nil
	}
	u, _ := statUsage(r.MountPath(key))
	return u
}

// Summary totals a list and gives the host filesystem's room.
type Summary struct {
	Caches int `json:"caches"`
	// InUse counts the caches a live process holds; States counts every
	// state that some cache is in.
	InUse          int            `json:"in_use"`
	States         map[string]int `json:"states"`
	CapBytes       int64          `json:"cap_bytes"`
	ApparentBytes  int64          `json:"apparent_bytes"`
	AllocatedBytes int64          `json:"allocated_bytes"`
	UsedBytes      int64          `json:"used_bytes"`
	HostFreeBytes  int64          `json:"host_free_bytes"`
	HostBytes      int64          `json:"host_bytes"`
	HostFreeInodes uint64         `json:"host_free_inodes"`
	HostInodes     uint64         `json:"host_inodes"`
}

// Summarize totals entries and reads the host filesystem's free room.
// Blocks that several caches share (reflink clones of a warm cache) count
// once in AllocatedBytes, as the host filesystem holds them once.
func (r *Root) Summarize(entries []Entry) (Summary, error) {
	s := Summary{States: map[string]int{}}
	var shared []volumes.Extent
	for _, e := range entries {
		s.Caches++
		s.States[e.State]++
		if e.State == StateInUse {
			s.InUse++
		}
		s.CapBytes += e.CapBytes
		s.ApparentBytes += e.ApparentBytes
		s.AllocatedBytes += e.AllocatedBytes - e.SharedBytes // shared blocks: once, below
		shared = append(shared, e.shared...)
		s.UsedBytes += e.UsedBytes
	}
	s.AllocatedBytes += int64(volumes.UnionBytes(shared))
	var err error
	s.HostFreeBytes, s.HostBytes, s.HostFreeInodes, s.HostInodes, err = r.hostStat()
	return s, err
}

// sortKeys are the columns entries can be sorted by.
var sortKeys = map[string]func(a, b Entry) int{
	"key":       func(a, b Entry) int { return cmp.Compare(a.Key, b.Key) },
	"kind":      func(a, b Entry) int { return cmp.Compare(a.Kind, b.Kind) },
	"cap":       func(a, b Entry) int { return cmp.Compare(a.CapBytes, b.CapBytes) },
	"apparent":  func(a, b Entry) int { return cmp.Compare(a.ApparentBytes, b.ApparentBytes) },
	"allocated": func(a, b Entry) int { return cmp.Compare(a.AllocatedBytes, b.AllocatedBytes) },
	"used":      func(a, b Entry) int { return cmp.Compare(a.UsedBytes, b.UsedBytes) },
	"inodes":    func(a, b Entry) int { return cmp.Compare(a.InodesUsed, b.InodesUsed) },
	"state":     func(a, b Entry) int { return cmp.Compare(a.State, b.State) },
	"holder":    func(a, b Entry) int { return cmp.Compare(a.HolderPID, b.HolderPID) },
	"created":   func(a, b Entry) int { return a.Created.Compare(b.Created) },
	"last-used": func(a, b Entry) int { return lastUsed(a).Compare(lastUsed(b)) },
	"hits":      func(a, b Entry) int { return cmp.Compare(a.Hits, b.Hits) },
}

// SortColumns lists the columns SortEntries accepts.
func SortColumns() []string {
	cols := make([]string, 0, len(sortKeys))
	for k := range sortKeys {
		cols = append(cols, k)
	}
	slices.Sort(cols)
	return cols
}

// SortEntries sorts by a column (ties by key), descending with reverse.
func SortEntries(entries []Entry, column string, reverse bool) error {
	by, ok := sortKeys[column]
	if !ok {
		return fmt.Errorf("%w: cannot sort by %q: want one of %s", ErrInvalid, column, strings.Join(SortColumns(), ", "))
	}
	slices.SortStableFunc(entries, func(a, b Entry) int {
		c := cmp.Or(by(a, b), cmp.Compare(a.Key, b.Key))
		if reverse {
			return -c
		}
		return c
	})
	return nil
}

// lastUsed is when the cache was last used, or created if never.
func lastUsed(e Entry) time.Time {
	if e.LastUsed != nil {
		return *e.LastUsed
	}
	return e.Created
}
