package cache

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/containerd/continuity/fs"
	"github.com/dindstore/dindstore/volumes"
	"golang.org/x/sys/unix"
)

// States a cache can be in.
const (
	StateIdle  = "idle"
	StateInUse = "in-use"
)

// Entry is one cache as `dindstore ls` shows it.
type Entry struct {
	Key  string       `json:"key"`
	Kind volumes.Kind `json:"kind"`
	FS   volumes.FS   `json:"fs,omitempty"`
	// CapBytes is the size cap (0 for uncapped kinds).
	CapBytes int64 `json:"cap_bytes"`
	// ApparentBytes is the image's st_size; for dir and vfs caches, the
	// walked usage of the directory (taken only while the cache is idle).
	ApparentBytes int64 `json:"apparent_bytes"`
	// AllocatedBytes is what the cache takes on the host (st_blocks×512).
	AllocatedBytes int64 `json:"allocated_bytes"`
	// State is idle or in-use.
	State string `json:"state"`
	// HolderPID is the pid holding the cache, 0 when idle.
	HolderPID int `json:"holder_pid"`
	// Created and LastUsed are RFC 3339 times; LastUsed is null until the
	// cache is first used.
	Created  time.Time  `json:"created"`
	LastUsed *time.Time `json:"last_used"`
	// StorageDriver is the driver the inner daemon must use.
	StorageDriver string `json:"storage_driver"`
	// Error is set when the cache's record or data could not be read.
	Error string `json:"error,omitempty"`
}

// List returns one entry per cache, sorted by key. It never takes a lock,
// so it cannot make a concurrent run fail.
func (r *Root) List(ctx context.Context) ([]Entry, error) {
	names, err := os.ReadDir(filepath.Join(r.path, "records"))
	if err != nil {
		return nil, fmt.Errorf("list records: %w", err)
	}
	var out []Entry
	for _, n := range names {
		key, ok := strings.CutSuffix(n.Name(), ".json")
		if !ok || ValidateKey(key) != nil {
			continue // temp files of atomic writes, strangers
		}
		out = append(out, r.entry(ctx, key))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (r *Root) entry(ctx context.Context, key string) Entry {
	e := Entry{Key: key, State: StateIdle}
	rec, err := r.readRecord(key)
	if err != nil {
		e.Error = err.Error()
		return e
	}
	e.Kind, e.FS, e.CapBytes, e.Created = rec.Kind, rec.FS, rec.CapBytes, rec.Created
	e.StorageDriver = rec.StorageDriver
	if !rec.LastUsed.IsZero() {
		t := rec.LastUsed
		e.LastUsed = &t
	}
	held, pid, _, err := r.Holder(key)
	if err != nil {
		e.Error = err.Error()
	}
	if held {
		e.State, e.HolderPID = StateInUse, pid
	}
	if err := r.usage(ctx, rec, held, &e); err != nil {
		e.Error = err.Error()
	}
	return e
}

// usage fills the sizes: st_size and st_blocks of a loop image; a walk of
// an idle dir or vfs cache (a cache in use holds the inner daemon's mounts,
// which a walk must not enter).
func (r *Root) usage(ctx context.Context, rec *Record, held bool, e *Entry) error {
	if rec.Kind == volumes.Loop {
		var st unix.Stat_t
		if err := unix.Lstat(r.imagePath(rec.Key), &st); err != nil {
			return fmt.Errorf("stat image: %w", err)
		}
		e.ApparentBytes, e.AllocatedBytes = st.Size, st.Blocks*512
		return nil
	}
	if held {
		return nil
	}
	u, err := fs.DiskUsage(ctx, r.dataPath(rec.Key))
	if err != nil {
		return fmt.Errorf("disk usage: %w", err)
	}
	e.ApparentBytes, e.AllocatedBytes = u.Size, u.Size
	return nil
}
