package csi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/dindstore/dindstore/cache"
	"github.com/dindstore/dindstore/volumes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TopologyKey is the topology segment of a provisioned volume: the node
// that holds its cache (a cache is node-local).
const TopologyKey = "topology.dindstore.io/node"

// pvPrefix begins the id (and cache key) of a provisioned volume.
const pvPrefix = "pv."

// provisionedKey is the cache key, and volume id, of the volume that
// CreateVolume makes for name (the claim's persistent volume's name).
func provisionedKey(name string) string {
	sum := sha256.Sum256([]byte(name))
	return pvPrefix + hex.EncodeToString(sum[:16])
}

// isProvisioned tells the id of a volume CreateVolume made.
func isProvisioned(volumeID string) bool {
	return strings.HasPrefix(volumeID, pvPrefix) && cache.ValidateKey(volumeID) == nil
}

// ControllerGetCapabilities: volumes are created and deleted (cloned, and
// snapshotted) on the node that holds them, and the node says how much
// room it has.
func (d *Driver) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	var caps []*csi.ControllerServiceCapability
	for _, t := range []csi.ControllerServiceCapability_RPC_Type{
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
		csi.ControllerServiceCapability_RPC_GET_CAPACITY,
		csi.ControllerServiceCapability_RPC_CLONE_VOLUME,
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_SNAPSHOT,
		csi.ControllerServiceCapability_RPC_LIST_SNAPSHOTS,
	} {
		caps = append(caps, &csi.ControllerServiceCapability{Type: &csi.ControllerServiceCapability_Rpc{
			Rpc: &csi.ControllerServiceCapability_RPC{Type: t}}})
	}
	return &csi.ControllerGetCapabilitiesResponse{Capabilities: caps}, nil
}

// CreateVolume makes a persistent volume's cache on this node (the plugin
// runs as a node-local provisioner: the volume's topology is this node):
// a fresh capped cache, or a clone of another provisioned volume or of a
// snapshot (its content source) or of a warm key (parameter from). The same name makes
// the same volume again, when its capacity agrees.
func (d *Driver) CreateVolume(ctx context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	r, err := d.checkCreate(req)
	if err != nil {
		return nil, err
	}
	key := provisionedKey(req.GetName())
	end, err := d.begin(key)
	if err != nil {
		return nil, err
	}
	defer end()
	rec, err := d.provision(ctx, key, r, req)
	if err != nil {
		return nil, err
	}
	return &csi.CreateVolumeResponse{Volume: &csi.Volume{VolumeId: key, CapacityBytes: rec.CapBytes,
		ContentSource:      req.GetVolumeContentSource(),
		AccessibleTopology: []*csi.Topology{{Segments: map[string]string{TopologyKey: d.cfg.NodeID}}}}}, nil
}

// checkCreate validates a CreateVolume request before anything is made.
func (d *Driver) checkCreate(req *csi.CreateVolumeRequest) (Request, error) {
	if req.GetName() == "" {
		return Request{}, status.Error(codes.InvalidArgument, "volume name missing")
	}
	if len(req.GetVolumeCapabilities()) == 0 {
		return Request{}, status.Error(codes.InvalidArgument, "volume capabilities missing")
	}
	capFS := ""
	for _, c := range req.GetVolumeCapabilities() {
		if err := checkCapability(c); err != nil {
			return Request{}, err
		}
		if fs := c.GetMount().GetFsType(); fs != "" {
			capFS = fs
		}
	}
	if !d.reachable(req.GetAccessibilityRequirements()) {
		return Request{}, status.Errorf(codes.ResourceExhausted, "this node (%s) is not in the volume's topology", d.cfg.NodeID)
	}
	r, err := ParseParameters(req.GetParameters(), capFS, d.cfg.Limits)
	if err != nil {
		return Request{}, status.Error(codes.InvalidArgument, err.Error())
	}
	size, err := capacity(req.GetCapacityRange(), r.Spec.Size, d.cfg.Limits.MaxSize)
	if err != nil {
		return Request{}, err
	}
	r.Spec.Size = size
	return r, nil
}

// checkCapability takes mount volumes written from one node.
func checkCapability(c *csi.VolumeCapability) error {
	if c.GetMount() == nil {
		return status.Error(codes.InvalidArgument, "only mount volumes are served: a block volume cannot hold a Docker data root")
	}
	return checkAccessMode(c.GetAccessMode())
}

// reachable says whether this node satisfies the topology requirement
// (none given: any node does).
func (d *Driver) reachable(req *csi.TopologyRequirement) bool {
	if len(req.GetRequisite()) == 0 && len(req.GetPreferred()) == 0 {
		return true
	}
	for _, t := range append(req.GetRequisite(), req.GetPreferred()...) {
		if t.GetSegments()[TopologyKey] == d.cfg.NodeID {
			return true
		}
	}
	return false
}

// capacity is the cap for a capacity range: the required bytes (the
// default when none), within the limit and the plugin's maximum.
func capacity(r *csi.CapacityRange, def, maxSize int64) (int64, error) {
	size, limit := r.GetRequiredBytes(), r.GetLimitBytes()
	switch {
	case size < 0 || limit < 0:
		return 0, status.Errorf(codes.InvalidArgument, "capacity range %d..%d", size, limit)
	case size == 0 && limit > 0:
		size = min(def, limit)
	case size == 0:
		size = def
	}
	size = (size + 1<<20 - 1) &^ (1<<20 - 1) // whole MiB
	switch {
	case limit > 0 && size > limit:
		return 0, status.Errorf(codes.OutOfRange, "a volume of %d bytes (whole MiB) exceeds the limit of %d bytes", size, limit)
	case maxSize > 0 && size > maxSize:
		return 0, status.Errorf(codes.OutOfRange, "a volume of %d bytes exceeds this plugin's --max-size (%d bytes)", size, maxSize)
	}
	return size, nil
}

// provision makes (or finds again) the volume's cache.
func (d *Driver) provision(ctx context.Context, key string, r Request, req *csi.CreateVolumeRequest) (*cache.Record, error) {
	if rec, err := d.root.Record(key); err == nil {
		if err := sameVolume(rec, r, req); err != nil {
			return nil, err
		}
		return d.pinned(rec, "volume", req.GetName())
	} else if !errors.Is(err, cache.ErrNotFound) {
		return nil, status.Errorf(codes.Internal, "volume %s: %v", req.GetName(), err)
	}
	release, err := d.reserve(key, r.Spec.Size)
	if err != nil {
		return nil, err
	}
	defer release()
	switch src := sourceOf(req, r); {
	case src != "" && !ownSource(req.GetVolumeContentSource()):
		return nil, status.Errorf(codes.NotFound, "volume %s: its source %q is not a volume or snapshot this plugin made", req.GetName(), src)
	case src != "":
		_, err = d.root.Clone(ctx, src, key)
		if err == nil {
			err = d.growTo(ctx, key, r.Spec.Size)
		}
	default:
		_, _, err = d.root.Create(ctx, key, r.Spec)
	}
	if err != nil {
		return nil, provisionStatus(err, req.GetName())
	}
	rec, err := d.root.Record(key)
	if err != nil {
		return nil, err
	}
	return d.pinned(rec, "volume", req.GetName())
}

// pinned pins a provisioned volume's or snapshot's cache to its
// Kubernetes object (prune passes it), once; rec comes back updated.
func (d *Driver) pinned(rec *cache.Record, what, name string) (*cache.Record, error) {
	if rec.Pinned != "" {
		return rec, nil
	}
	by := fmt.Sprintf("CSI %s %s of %s", what, name, d.cfg.DriverName)
	if err := d.root.Pin(rec.Key, by); err != nil {
		return nil, status.Errorf(codes.Internal, "%s %s: %v", what, name, err)
	}
	rec.Pinned = by
	return rec, nil
}

// sourceOf is the cache a new volume clones: its content source's volume
// or snapshot, or the warm key its parameters name.
func sourceOf(req *csi.CreateVolumeRequest, r Request) string {
	if v := req.GetVolumeContentSource().GetVolume(); v != nil {
		return v.GetVolumeId()
	}
	if s := req.GetVolumeContentSource().GetSnapshot(); s != nil {
		return s.GetSnapshotId()
	}
	return r.From
}

// ownSource accepts no content source, or a provisioned volume's or a
// snapshot's id (never a warm key's or another plugin volume's).
func ownSource(src *csi.VolumeContentSource) bool {
	switch {
	case src == nil:
		return true
	case src.GetVolume() != nil:
		return isProvisioned(src.GetVolume().GetVolumeId())
	case src.GetSnapshot() != nil:
		return isSnapshot(src.GetSnapshot().GetSnapshotId())
	}
	return false
}

// growTo grows a clone to the size asked, when larger than its source.
func (d *Driver) growTo(ctx context.Context, key string, size int64) error {
	rec, err := d.root.Record(key)
	if err != nil || rec.Kind != volumes.Loop || size <= rec.CapBytes {
		return err
	}
	return d.root.Grow(ctx, key, size)
}

// sameVolume refuses a second CreateVolume of a name with another size.
func sameVolume(rec *cache.Record, r Request, req *csi.CreateVolumeRequest) error {
	limit := req.GetCapacityRange().GetLimitBytes()
	if rec.Kind == volumes.Loop && (r.Spec.Size > rec.CapBytes || limit > 0 && rec.CapBytes > limit) {
		return status.Errorf(codes.AlreadyExists, "volume %s exists with %d bytes, not %d", req.GetName(), rec.CapBytes, r.Spec.Size)
	}
	return nil
}

// provisionStatus maps a failed provisioning to the code the provisioner acts on.
func provisionStatus(err error, name string) error {
	switch {
	case errors.Is(err, cache.ErrNotFound):
		return status.Errorf(codes.NotFound, "volume %s: its source: %v", name, err)
	case errors.Is(err, cache.ErrNoRoom):
		return status.Errorf(codes.ResourceExhausted, "volume %s: %v", name, err)
	case errors.Is(err, cache.ErrInvalid):
		return status.Errorf(codes.InvalidArgument, "volume %s: %v", name, err)
	case errors.Is(err, cache.ErrLocked), errors.Is(err, cache.ErrInUse), errors.Is(err, cache.ErrDamaged):
		return status.Errorf(codes.FailedPrecondition, "volume %s: %v", name, err)
	}
	return status.Errorf(codes.Internal, "volume %s: %v", name, err)
}

// reserve admits a cap the node can promise (see GetCapacity) and holds
// it until release, so volumes made at once are admitted against one
// another.
func (d *Driver) reserve(key string, size int64) (release func(), err error) {
	d.roomMu.Lock()
	defer d.roomMu.Unlock()
	avail, err := d.availableLocked()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "room on the node: %v", err)
	}
	if size > avail {
		return nil, status.Errorf(codes.ResourceExhausted, "a volume of %d bytes: this node has room for %d (free space "+
			"above keep-free, less what the caches in use and the volumes not used yet may still write)", size, avail)
	}
	d.reserved[key] = size
	return func() {
		d.roomMu.Lock()
		delete(d.reserved, key)
		d.roomMu.Unlock()
	}, nil
}

// available is the room admission would grant a new cache: the host's
// free space above keep-free, less what the caches in use may still write,
// and what the provisioned volumes not used yet (or being made) may write:
// their pods are on their way (the scheduler checks each claim against
// the published capacity alone, so a burst of claims on one node is
// refused here, and put back to the scheduler, rather than at their pods'
// start).
func (d *Driver) available() (int64, error) {
	d.roomMu.Lock()
	defer d.roomMu.Unlock()
	return d.availableLocked()
}

// availableLocked is available, with roomMu held.
func (d *Driver) availableLocked() (int64, error) {
	pending, err := d.pendingVolumes()
	if err != nil {
		return 0, err
	}
	room, err := d.root.Room(d.cfg.Acquire.KeepFree, pending...)
	if err != nil {
		return 0, err
	}
	var making int64
	for _, size := range d.reserved {
		making += size
	}
	return max(0, room.FreeBytes-room.FloorBytes-room.CommittedBytes-making), nil
}

// promised are the provisioned volumes not used yet, and those being made:
// their pods are on their way, and admission of others counts them.
func (d *Driver) promised() []string {
	d.roomMu.Lock()
	defer d.roomMu.Unlock()
	keys, _ := d.pendingVolumes() // unreadable: the root's own error comes at Acquire
	return append(keys, slices.Collect(maps.Keys(d.reserved))...)
}

// pendingVolumes are the provisioned volumes never used yet (roomMu held).
func (d *Driver) pendingVolumes() ([]string, error) {
	keys, err := d.root.Keys()
	if err != nil {
		return nil, err
	}
	var pending []string
	for _, k := range keys {
		if _, making := d.reserved[k]; making || !isProvisioned(k) {
			continue // one being made is counted by its reservation
		}
		if rec, err := d.root.Record(k); err == nil && rec.LastUsed.IsZero() {
			pending = append(pending, k)
		}
	}
	return pending, nil
}

// DeleteVolume removes a provisioned volume's cache (refused while it is
// published); an id that names none succeeds, as the spec asks.
func (d *Driver) DeleteVolume(ctx context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	if err := d.removeKept(ctx, "volume", req.GetVolumeId(), isProvisioned); err != nil {
		return nil, err
	}
	return &csi.DeleteVolumeResponse{}, nil
}

// removeKept removes the cache of a provisioned volume or a snapshot, id;
// one that is none of ours, or gone already, is removed already.
func (d *Driver) removeKept(ctx context.Context, kind, id string, ours func(string) bool) error {
	if id == "" {
		return status.Errorf(codes.InvalidArgument, "%s id missing", kind)
	}
	if !ours(id) {
		return nil
	}
	end, err := d.begin(id)
	if err != nil {
		return err
	}
	defer end()
	if err := d.root.Remove(ctx, id); err != nil && !errors.Is(err, cache.ErrNotFound) {
		return provisionStatus(err, id)
	}
	return nil
}

// ValidateVolumeCapabilities confirms mount capabilities written from one
// node for a volume that exists.
func (d *Driver) ValidateVolumeCapabilities(ctx context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	switch {
	case req.GetVolumeId() == "":
		return nil, status.Error(codes.InvalidArgument, "volume id missing")
	case len(req.GetVolumeCapabilities()) == 0:
		return nil, status.Error(codes.InvalidArgument, "volume capabilities missing")
	case !isProvisioned(req.GetVolumeId()) || !d.root.Exists(req.GetVolumeId()):
		return nil, status.Errorf(codes.NotFound, "volume %s does not exist on node %s", req.GetVolumeId(), d.cfg.NodeID)
	}
	for _, c := range req.GetVolumeCapabilities() {
		if err := checkCapability(c); err != nil {
			return &csi.ValidateVolumeCapabilitiesResponse{Message: err.Error()}, nil
		}
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeContext: req.GetVolumeContext(), VolumeCapabilities: req.GetVolumeCapabilities(),
		Parameters: req.GetParameters()}}, nil
}

// GetCapacity is the room this node would grant a new volume (0 for
// another node's topology): what the scheduler's capacity tracking sees.
func (d *Driver) GetCapacity(ctx context.Context, req *csi.GetCapacityRequest) (*csi.GetCapacityResponse, error) {
	if t := req.GetAccessibleTopology(); t != nil && t.GetSegments()[TopologyKey] != d.cfg.NodeID {
		return &csi.GetCapacityResponse{}, nil
	}
	if _, err := ParseParameters(req.GetParameters(), "", d.cfg.Limits); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	avail, err := d.available()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "room on the node: %v", err)
	}
	return &csi.GetCapacityResponse{AvailableCapacity: avail,
		MaximumVolumeSize: wrapperspb.Int64(min(avail, d.cfg.Limits.MaxSize))}, nil
}

// errNotProvisioned is the publish of a provisioned volume whose cache is gone.
var errNotProvisioned = fmt.Errorf("%w: the volume's cache is not on this node", cache.ErrNotFound)
