package csi

import (
	"context"
	"path/filepath"
	"sync"

	csi "github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/dindstore/dindstore/cache"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// DefaultDriverName is the CSI driver's name, as the CSIDriver object and
// pods' volumes name it.
const DefaultDriverName = "dindstore.csi.dindstore.io"

// Config is what the plugin is started with.
type Config struct {
	// DriverName is the plugin's name (DefaultDriverName when empty).
	DriverName string
	// Version is reported by GetPluginInfo.
	Version string
	// NodeID is this node's name, as the kubelet knows it.
	NodeID string
	// MaxVolumes is NodeGetInfo's max_volumes_per_node (0: no limit).
	MaxVolumes int64
	// Limits bound what a volume may ask.
	Limits Limits
	// Acquire are the leases' options (admission's KeepFree; Overcommit
	// should stay off: a node without room must say so).
	Acquire cache.AcquireOptions
	// Warming, when set, says whether a warm key is in its first pull
	// from a registry (--warm-source), and how far: a volume from it then
	// waits (UNAVAILABLE, which the kubelet retries) rather than start cold.
	Warming func(key string) (at string, warming bool)
	// Committed, when set, is told the warm key a volume's clone was
	// committed into (to push it back, --push-commits).
	Committed func(warm string)
}

// Driver is the plugin: the CSI Identity and Node services over one cache
// root, holding the leases of the volumes it published.
type Driver struct {
	csi.UnimplementedIdentityServer
	csi.UnimplementedControllerServer
	csi.UnimplementedNodeServer

	cfg   Config
	root  *cache.Root
	store store

	mu    sync.Mutex
	pubs  map[string]*publication // by volume id
	busy  map[string]bool         // volume ids with a call in progress
	ready bool

	roomMu   sync.Mutex       // admits one CreateVolume at a time against the room
	reserved map[string]int64 // caps of the volumes being made, by key
}

// New makes the plugin over root; Start then takes over what an earlier
// run left.
func New(root *cache.Root, cfg Config) *Driver {
	if cfg.DriverName == "" {
		cfg.DriverName = DefaultDriverName
	}
	return &Driver{cfg: cfg, root: root, store: store{dir: filepath.Join(root.Path(), "csi")},
		pubs: map[string]*publication{}, busy: map[string]bool{}, reserved: map[string]int64{}}
}

// GetPluginInfo names the plugin.
func (d *Driver) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: d.cfg.DriverName, VendorVersion: d.version()}, nil
}

func (d *Driver) version() string {
	if d.cfg.Version == "" {
		return "dev"
	}
	return d.cfg.Version
}

// GetPluginCapabilities: a controller service (each node's plugin
// provisions the volumes of its own topology) and topology constraints.
func (d *Driver) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	var caps []*csi.PluginCapability
	for _, t := range []csi.PluginCapability_Service_Type{
		csi.PluginCapability_Service_CONTROLLER_SERVICE,
		csi.PluginCapability_Service_VOLUME_ACCESSIBILITY_CONSTRAINTS,
	} {
		caps = append(caps, &csi.PluginCapability{Type: &csi.PluginCapability_Service_{
			Service: &csi.PluginCapability_Service{Type: t}}})
	}
	return &csi.GetPluginCapabilitiesResponse{Capabilities: caps}, nil
}

// Probe is ready once Start has taken over what an earlier run left.
func (d *Driver) Probe(context.Context, *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return &csi.ProbeResponse{Ready: wrapperspb.Bool(d.ready)}, nil
}

// NodeGetInfo names the node and its volume limit.
func (d *Driver) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{NodeId: d.cfg.NodeID, MaxVolumesPerNode: d.cfg.MaxVolumes,
		AccessibleTopology: &csi.Topology{Segments: map[string]string{TopologyKey: d.cfg.NodeID}}}, nil
}

// NodeGetCapabilities: volume stats, volume health (CSI 1.13), and the
// volume condition in the stats (earlier specs' kubelets).
func (d *Driver) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	var caps []*csi.NodeServiceCapability
	for _, t := range []csi.NodeServiceCapability_RPC_Type{
		csi.NodeServiceCapability_RPC_GET_VOLUME_STATS,
		csi.NodeServiceCapability_RPC_GET_VOLUME_HEALTH,
		volumeCondition,
	} {
		caps = append(caps, &csi.NodeServiceCapability{Type: &csi.NodeServiceCapability_Rpc{
			Rpc: &csi.NodeServiceCapability_RPC{Type: t}}})
	}
	return &csi.NodeGetCapabilitiesResponse{Capabilities: caps}, nil
}

// begin marks a call on a volume in progress; a second one at the same
// time is told to retry (ABORTED, as the spec asks).
func (d *Driver) begin(volumeID string) (end func(), err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.busy[volumeID] {
		return nil, status.Errorf(codes.Aborted, "an operation on volume %s is in progress", volumeID)
	}
	d.busy[volumeID] = true
	return func() {
		d.mu.Lock()
		delete(d.busy, volumeID)
		d.mu.Unlock()
	}, nil
}

// lookup returns the volume's publication, nil when it has none.
func (d *Driver) lookup(volumeID string) *publication {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pubs[volumeID]
}

func (d *Driver) setPub(p *publication) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pubs[p.VolumeID] = p
}

func (d *Driver) dropPub(volumeID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.pubs, volumeID)
}
