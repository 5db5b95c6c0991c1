package cache

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/containerd/continuity/fs"
	"github.com/dindstore/dindstore/volumes"
	"github.com/moby/sys/mountinfo"
)

// Inspection is everything dindstore knows of one cache.
type Inspection struct {
	Entry  Entry   `json:"cache"`
	Record *Record `json:"record"`
	// Owner is the live holder's owner record.
	Owner *Owner `json:"owner,omitempty"`
	// Loop lists the loop devices backed by the image.
	Loop []volumes.LoopInfo `json:"loop_devices,omitempty"`
	// Mounts lists the cache's mount and those below it.
	Mounts []*mountinfo.Info `json:"mounts,omitempty"`
	// Daemons are the inner dockerds running on the cache.
	Daemons []Daemon `json:"daemons,omitempty"`
	// Containerd counts, while the cache is mounted, what its containerd
	// keeps: the content store and each snapshotter (containerd image store).
	Containerd map[string]int64 `json:"containerd_bytes,omitempty"`
}

// Inspect gathers the record, the list entry, the holder, the loop device,
// the mounts and the inner daemons of a cache, without changing anything.
func (r *Root) Inspect(ctx context.Context, key string) (*Inspection, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	rec, err := r.readRecord(key)
	if err != nil {
		return nil, err
	}
	flocks, err := readFlocks()
	if err != nil {
		return nil, err
	}
	bound, _ := volumes.BoundImages(filepath.Join(r.path, "images")) // nil: no problem states
	in := &Inspection{Record: rec, Entry: r.entry(ctx, key, flocks, bound, ListOptions{})}
	_, _, in.Owner, _ = r.holder(key, flocks)
	if rec.Kind == volumes.Loop {
		if in.Loop, err = volumes.ImageDevices(r.imagePath(key)); err != nil && !errors.Is(err, volumes.ErrNotSupported) {
			return nil, fmt.Errorf("inspect %q: %w", key, err)
		}
	}
	if in.Mounts, err = mountinfo.GetMounts(mountinfo.PrefixFilter(r.MountPath(key))); err != nil {
		return nil, fmt.Errorf("inspect %q: %w", key, err)
	}
	in.Daemons = InnerDaemons(r.MountPath(key))
	if len(in.Mounts) > 0 {
		in.Containerd = containerdUsage(ctx, r.MountPath(key))
	}
	return in, nil
}

// containerdUsage walks the content store and the snapshotters of the
// containerd that dockerd manages below a data root.
func containerdUsage(ctx context.Context, dataRoot string) map[string]int64 {
	dirs, _ := filepath.Glob(filepath.Join(dataRoot, "containerd", "daemon", "io.containerd.*"))
	out := map[string]int64{}
	for _, d := range dirs {
		name := filepath.Base(d)
		if !strings.Contains(name, "content") && !strings.Contains(name, "snapshotter") {
			continue
		}
		if u, err := fs.DiskUsage(ctx, d); err == nil && u.Size > 0 {
			out[name] = u.Size
		}
	}
	return out
}

// Daemon is a dockerd whose data root is a cache's mount.
type Daemon struct {
	PID int `json:"pid"`
	// Hosts are its -H / --host addresses.
	Hosts []string `json:"hosts"`
}
