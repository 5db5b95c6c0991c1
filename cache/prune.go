package cache

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/docker/go-units"
)

// Policy says which idle caches prune removes. The rules combine: a cache
// goes when any rule wants it gone, least recently used first, and the
// count, total and host floors are re-checked after every removal.
type Policy struct {
	// OlderThan removes caches idle for longer (0: off).
	OlderThan time.Duration `json:"older_than,omitempty"`
	// MaxTotal caps the bytes all caches allocate on the host (0: off).
	MaxTotal int64 `json:"max_total,omitempty"`
	// KeepFree and KeepFreeInodes are floors, in percent, of the host
	// filesystem's free bytes and inodes (0: off).
	KeepFree       float64 `json:"keep_free,omitempty"`
	KeepFreeInodes float64 `json:"keep_free_inodes,omitempty"`
	// MaxCount caps the number of caches (negative: off; 0 keeps none).
	MaxCount int `json:"max_count"`
	// IncludeWarm lets the rules remove warm caches (those with committed
	// generations) too; by default prune keeps the newest generation of
	// each, and removes only earlier generations.
	IncludeWarm bool `json:"include_warm,omitempty"`
}

// Validate refuses rules out of range.
func (p Policy) Validate() error {
	switch {
	case p.OlderThan < 0:
		return fmt.Errorf("%w: --older-than %s is negative", ErrInvalid, p.OlderThan)
	case p.MaxTotal < 0:
		return fmt.Errorf("%w: --max-total %d is negative", ErrInvalid, p.MaxTotal)
	case p.KeepFree < 0 || p.KeepFree >= 100:
		return fmt.Errorf("%w: --keep-free %g%% must be from 0 up to (not including) 100%%", ErrInvalid, p.KeepFree)
	case p.KeepFreeInodes < 0 || p.KeepFreeInodes >= 100:
		return fmt.Errorf("%w: --keep-free-inodes %g%% must be from 0 up to (not including) 100%%", ErrInvalid, p.KeepFreeInodes)
	case p.Empty():
		return fmt.Errorf("%w: prune needs a policy: --older-than, --max-total, --keep-free, --keep-free-inodes or --max-count", ErrInvalid)
	}
	return nil
}

// Empty reports whether no rule is set.
func (p Policy) Empty() bool {
	return p.OlderThan == 0 && p.MaxTotal == 0 && p.KeepFree == 0 && p.KeepFreeInodes == 0 && p.MaxCount < 0
}

// needsSizes reports whether the rules weigh bytes or inodes, for which dir
// and vfs caches must be walked.
func (p Policy) needsSizes() bool { return p.MaxTotal > 0 || p.KeepFree > 0 || p.KeepFreeInodes > 0 }

// Removal is one cache prune removed, or would remove in a dry run.
type Removal struct {
	Key      string    `json:"key"`
	LastUsed time.Time `json:"last_used"`
	// FreesBytes is what the cache allocates on the host.
	FreesBytes int64 `json:"frees_bytes"`
	// Reason names the rule that wanted it gone.
	Reason string `json:"reason"`
	// Removed is false in a dry run, or when the cache was taken meanwhile.
	Removed bool  `json:"removed"`
	Err     error `json:"-"`
}

// pruneState is the simulated host as removals proceed.
type pruneState struct {
	count              int
	total              int64
	free, size         int64
	freeInodes, inodes uint64
	now                time.Time
}

// Prune removes idle caches as the policy says, least recently used first.
// A cache in use, or whose lock cannot be taken at once, is never touched.
// With dryRun nothing is removed and the removals say what would go.
func (r *Root) Prune(ctx context.Context, p Policy, dryRun bool) ([]Removal, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	entries, err := r.List(ctx, ListOptions{Deep: p.needsSizes()})
	if err != nil {
		return nil, err
	}
	sum, err := r.Summarize(entries)
	if err != nil {
		return nil, err
	}
	st := pruneState{count: len(entries), total: sum.AllocatedBytes, free: sum.HostFreeBytes, size: sum.HostBytes,
		freeInodes: sum.HostFreeInodes, inodes: sum.HostInodes, now: time.Now()}
	out := r.prunePrevious(entries, dryRun)
	for _, rm := range out {
		st.total -= rm.FreesBytes
		st.free += rm.FreesBytes
	}
	for _, e := range lruIdle(entries, p.IncludeWarm) {
		reason := p.reason(e, st)
		if reason == "" {
			continue
		}
		rm := Removal{Key: e.Key, LastUsed: lastUsed(e), FreesBytes: e.AllocatedBytes, Reason: reason}
		if !dryRun {
			if err := r.Remove(ctx, e.Key); err != nil {
				rm.Err = err
				out = append(out, rm)
				continue // taken meanwhile, or failed: nothing was freed
			}
			rm.Removed = true
		}
		out = append(out, rm)
		st.count--
		st.total -= e.AllocatedBytes
		st.free += e.AllocatedBytes
		st.freeInodes += 1 + e.InodesUsedOnHost()
	}
	if !dryRun {
		r.countPrune(out)
	}
	return out, nil
}

// lruIdle returns the idle, readable caches no one pinned, least recently
// used first; warm caches only with includeWarm.
func lruIdle(entries []Entry, includeWarm bool) []Entry {
	var idle []Entry
	for _, e := range entries {
		if e.State == StateIdle && e.Err == nil && e.Pinned == "" && (includeWarm || e.Clone || e.Generation == 0) {
			idle = append(idle, e)
		}
	}
	slices.SortStableFunc(idle, func(a, b Entry) int { return lastUsed(a).Compare(lastUsed(b)) })
	return idle
}

// reason names the first rule that wants e gone in state st, or "".
func (p Policy) reason(e Entry, st pruneState) string {
	switch idle := st.now.Sub(lastUsed(e)); {
	case p.OlderThan > 0 && idle > p.OlderThan:
		return fmt.Sprintf("idle for %s (older-than %s)", idle.Round(time.Second), p.OlderThan)
	case p.MaxCount >= 0 && st.count > p.MaxCount:
		return fmt.Sprintf("%d caches (max-count %d)", st.count, p.MaxCount)
	case p.MaxTotal > 0 && st.total > p.MaxTotal:
		return fmt.Sprintf("caches allocate %s (max-total %s)", units.BytesSize(float64(st.total)), units.BytesSize(float64(p.MaxTotal)))
	case p.KeepFree > 0 && st.size > 0 && pct(uint64(st.free), uint64(st.size)) < p.KeepFree:
		return fmt.Sprintf("host %.1f%% free (keep-free %g%%)", pct(uint64(st.free), uint64(st.size)), p.KeepFree)
	case p.KeepFreeInodes > 0 && st.inodes > 0 && pct(st.freeInodes, st.inodes) < p.KeepFreeInodes:
		return fmt.Sprintf("host %.1f%% inodes free (keep-free-inodes %g%%)", pct(st.freeInodes, st.inodes), p.KeepFreeInodes)
	}
	return ""
}

func pct(part, whole uint64) float64 { return 100 * float64(part) / float64(whole) }

// InodesUsedOnHost is how many host inodes the cache takes beyond its own
// file or directory: none for a loop image, the walked count for a dir or
// vfs cache (known with --deep).
func (e Entry) InodesUsedOnHost() uint64 {
	if e.Kind == "loop" || e.InodesUsed == 0 {
		return 0
	}
	return e.InodesUsed - 1
}

// prunePrevious removes the earlier generations of idle warm caches: they
// were superseded by a commit, and are kept only until a prune.
func (r *Root) prunePrevious(entries []Entry, dryRun bool) []Removal {
	var out []Removal
	for _, e := range entries {
		if e.PreviousGenerations == 0 || e.State != StateIdle {
			continue
		}
		rec, err := r.readRecord(e.Key)
		if err != nil {
			continue
		}
		for _, name := range rec.Previous {
			p := filepath.Join(filepath.Dir(r.backing(rec, e.Key)), name)
			rm := Removal{Key: e.Key + " (" + name + ")", LastUsed: lastUsed(e), FreesBytes: allocatedOf(p),
				Reason: "previous generation of " + e.Key, Removed: !dryRun}
			out = append(out, rm)
		}
		if !dryRun {
			if err := r.dropPrevious(e.Key); err != nil {
				for i := len(out) - len(rec.Previous); i < len(out); i++ {
					out[i].Removed, out[i].Err = false, err
				}
			}
		}
	}
	return out
}

// dropPrevious removes a warm cache's earlier generations under its lock.
func (r *Root) dropPrevious(key string) error {
	l, err := r.tryLock(key)
	if err != nil {
		return err
	}
	defer l.release()
	return r.updateRecord(key, func(rec *Record) {
		r.removePrevious(rec, rec.Previous)
		rec.Previous = nil
	})
}

// allocatedOf is what a file takes on the host (a directory: 0, unknown).
func allocatedOf(p string) int64 {
	_, allocated, regular, err := fileSizes(p)
	if err != nil || !regular {
		return 0
	}
	return allocated
}
