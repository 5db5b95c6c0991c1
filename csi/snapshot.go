package csi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/dindstore/dindstore/cache"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// snapPrefix begins the id (and cache key) of a snapshot.
const snapPrefix = "snap."

// snapshotKey is the cache key, and snapshot id, of the snapshot that
// CreateSnapshot makes for name (the VolumeSnapshotContent's name).
func snapshotKey(name string) string {
	sum := sha256.Sum256([]byte(name))
	return snapPrefix + hex.EncodeToString(sum[:16])
}

// isSnapshot tells the id of a snapshot CreateSnapshot made.
func isSnapshot(id string) bool {
	return strings.HasPrefix(id, snapPrefix) && cache.ValidateKey(id) == nil
}

// CreateSnapshot keeps a provisioned volume's content as a cache of its
// own on the volume's node: a reflink (or sparse) clone, ready at once. A
// volume in use is refused (FAILED_PRECONDITION naming its holder; the
// snapshotter retries): a snapshot is the daemon's data at rest, never a
// half-written store. The same name with the same source is the same
// snapshot.
func (d *Driver) CreateSnapshot(ctx context.Context, req *csi.CreateSnapshotRequest) (*csi.CreateSnapshotResponse, error) {
	name, src := req.GetName(), req.GetSourceVolumeId()
	switch {
	case name == "":
		return nil, status.Error(codes.InvalidArgument, "snapshot name missing")
	case src == "":
		return nil, status.Error(codes.InvalidArgument, "source volume id missing")
	}
	key := snapshotKey(name)
	end, err := d.begin(key)
	if err != nil {
		return nil, err
	}
	defer end()
	rec, err := d.root.Record(key)
	switch {
	case err == nil && rec.Parent != src:
		return nil, status.Errorf(codes.AlreadyExists, "snapshot %s exists, of volume %s, not %s", name, rec.Parent, src)
	case errors.Is(err, cache.ErrNotFound):
		rec, err = d.snapshot(ctx, src, key)
	}
	if err != nil {
		return nil, provisionStatus(err, src)
	}
	if rec, err = d.pinned(rec, "snapshot", name); err != nil {
		return nil, err
	}
	return &csi.CreateSnapshotResponse{Snapshot: snapshotOf(rec)}, nil
}

// snapshot clones the volume src into the snapshot key.
func (d *Driver) snapshot(ctx context.Context, src, key string) (*cache.Record, error) {
	if !isProvisioned(src) || !d.root.Exists(src) {
		return nil, fmt.Errorf("%w: volume %s is not a volume this plugin provisioned on node %s", cache.ErrNotFound, src, d.cfg.NodeID)
	}
	// A volume in use is refused at once (the clone would wait for it).
	if held, pid, _, err := d.root.Holder(src); err != nil || held {
		if err == nil {
			err = fmt.Errorf("%w: volume %s is in use (pid %d): snapshot it when its pod has ended", cache.ErrInUse, src, pid)
		}
		return nil, err
	}
	if _, err := d.root.Clone(ctx, src, key); err != nil {
		return nil, err
	}
	return d.root.Record(key)
}

// snapshotOf describes a snapshot's cache.
func snapshotOf(rec *cache.Record) *csi.Snapshot {
	return &csi.Snapshot{SnapshotId: rec.Key, SourceVolumeId: rec.Parent, SizeBytes: rec.CapBytes,
		CreationTime: timestamppb.New(rec.Created), ReadyToUse: true}
}

// DeleteSnapshot removes a snapshot's cache (volumes made from it are
// clones of their own); an id that names none succeeds, as the spec asks.
func (d *Driver) DeleteSnapshot(ctx context.Context, req *csi.DeleteSnapshotRequest) (*csi.DeleteSnapshotResponse, error) {
	if err := d.removeKept(ctx, "snapshot", req.GetSnapshotId(), isSnapshot); err != nil {
		return nil, err
	}
	return &csi.DeleteSnapshotResponse{}, nil
}

// ListSnapshots lists this node's snapshots, by id or by source volume
// when asked, in pages of max_entries (the token is the next one's index).
func (d *Driver) ListSnapshots(ctx context.Context, req *csi.ListSnapshotsRequest) (*csi.ListSnapshotsResponse, error) {
	start := 0
	if t := req.GetStartingToken(); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 {
			return nil, status.Errorf(codes.Aborted, "starting token %q is not one this plugin gave", t)
		}
		start = n
	}
	if req.GetMaxEntries() < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "max_entries %d", req.GetMaxEntries())
	}
	all, err := d.snapshots(req.GetSnapshotId(), req.GetSourceVolumeId())
	if err != nil {
		return nil, status.Errorf(codes.Internal, "list snapshots: %v", err)
	}
	if start > len(all) {
		return nil, status.Errorf(codes.Aborted, "starting token %d is past the %d snapshots", start, len(all))
	}
	end, next := len(all), ""
	if m := int(req.GetMaxEntries()); m > 0 && start+m < len(all) {
		end, next = start+m, strconv.Itoa(start+m)
	}
	resp := &csi.ListSnapshotsResponse{NextToken: next}
	for _, s := range all[start:end] {
		resp.Entries = append(resp.Entries, &csi.ListSnapshotsResponse_Entry{Snapshot: s})
	}
	return resp, nil
}

// snapshots are this node's snapshots, sorted by id, narrowed to id and
// to the source volume when those are given.
func (d *Driver) snapshots(id, source string) ([]*csi.Snapshot, error) {
	keys, err := d.root.Keys()
	if err != nil {
		return nil, err
	}
	var out []*csi.Snapshot
	for _, k := range keys {
		if !isSnapshot(k) || id != "" && k != id {
			continue
		}
		rec, err := d.root.Record(k)
		if errors.Is(err, cache.ErrNotFound) {
			continue // deleted meanwhile
		} else if err != nil {
			return nil, err
		}
		if source == "" || rec.Parent == source {
			out = append(out, snapshotOf(rec))
		}
	}
	return out, nil
}
