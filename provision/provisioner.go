package provision

import (
	"context"
	"errors"
	"fmt"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/dindstore/dindstore/csi"
	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	snapclient "github.com/kubernetes-csi/external-snapshotter/client/v8/clientset/versioned"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/sig-storage-lib-external-provisioner/v13/controller"
)

// TopologyKey is the plugin's topology segment: the node that holds a
// volume.
const TopologyKey = csi.TopologyKey

// annSelectedNode is where the scheduler writes the node it picked for a
// claim that waits for its first consumer.
const annSelectedNode = "volume.kubernetes.io/selected-node"

// Provisioner provisions the claims placed on one node through the
// plugin's Controller service (controller.Provisioner).
type Provisioner struct {
	// CSI is the plugin's Controller service; Driver its name.
	CSI    csipb.ControllerClient
	Driver string
	// Node is this node's name (the plugin's node id).
	Node string
	// Client reads the source claims of clones.
	Client kubernetes.Interface
	// Snapshots reads the VolumeSnapshots claims restore; nil where
	// the snapshot API is not installed.
	Snapshots snapclient.Interface
	// Changed, when set, is told that a volume was made or deleted (the
	// node's published capacity is to be brought up to date).
	Changed func()
}

// errSourceElsewhere: the claim's data source is a volume of another node;
// a clone is made where its source is.
var errSourceElsewhere = errors.New("the data source is on another node")

var (
	_ controller.Provisioner   = (*Provisioner)(nil)
	_ controller.Qualifier     = (*Provisioner)(nil)
	_ controller.DeletionGuard = (*Provisioner)(nil)
)

// ShouldProvision takes the claims the scheduler placed on this node.
func (p *Provisioner) ShouldProvision(_ context.Context, claim *v1.PersistentVolumeClaim) bool {
	return claim.Annotations[annSelectedNode] == p.Node
}

// ShouldDelete takes the volumes of this node.
func (p *Provisioner) ShouldDelete(_ context.Context, pv *v1.PersistentVolume) bool {
	return p.owns(pv)
}

// Provision makes the claim's volume on this node (CreateVolume) and
// returns its PersistentVolume, bound to this node by its affinity.
func (p *Provisioner) Provision(ctx context.Context, opts controller.ProvisionOptions) (*v1.PersistentVolume, controller.ProvisioningState, error) {
	if opts.SelectedNodeName != p.Node {
		return nil, controller.ProvisioningNoChange, &controller.IgnoredError{Reason: "the claim is another node's"}
	}
	req, err := p.createRequest(ctx, opts)
	if errors.Is(err, errSourceElsewhere) {
		return nil, controller.ProvisioningReschedule, err // the scheduler may choose the source's node next
	} else if err != nil {
		return nil, controller.ProvisioningFinished, err
	}
	resp, err := p.CSI.CreateVolume(ctx, req)
	switch status.Code(err) {
	case codes.OK:
	case codes.ResourceExhausted, codes.NotFound: // no room here, or the clone's source is elsewhere
		return nil, controller.ProvisioningReschedule, fmt.Errorf("node %s: %w", p.Node, err)
	case codes.InvalidArgument, codes.OutOfRange, codes.AlreadyExists:
		return nil, controller.ProvisioningFinished, err
	default:
		return nil, controller.ProvisioningInBackground, err
	}
	p.changed()
	return p.volume(opts, resp.GetVolume()), controller.ProvisioningFinished, nil
}

// createRequest is the CreateVolume call for a claim.
func (p *Provisioner) createRequest(ctx context.Context, opts controller.ProvisionOptions) (*csipb.CreateVolumeRequest, error) {
	claim := opts.PVC
	if claim.Spec.VolumeMode != nil && *claim.Spec.VolumeMode == v1.PersistentVolumeBlock {
		return nil, errors.New("a dindstore volume is a filesystem (volumeMode Filesystem): a Docker data root")
	}
	mode, err := accessMode(claim.Spec.AccessModes)
	if err != nil {
		return nil, err
	}
	size := claim.Spec.Resources.Requests[v1.ResourceStorage]
	limit := claim.Spec.Resources.Limits[v1.ResourceStorage]
	req := &csipb.CreateVolumeRequest{Name: opts.PVName, Parameters: opts.StorageClass.Parameters,
		CapacityRange: &csipb.CapacityRange{RequiredBytes: size.Value(), LimitBytes: limit.Value()},
		VolumeCapabilities: []*csipb.VolumeCapability{{
			AccessType: &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{}},
			AccessMode: &csipb.VolumeCapability_AccessMode{Mode: mode}}},
		AccessibilityRequirements: &csipb.TopologyRequirement{
			Requisite: []*csipb.Topology{{Segments: map[string]string{TopologyKey: p.Node}}}}}
	req.VolumeContentSource, err = p.contentSource(ctx, claim)
	return req, err
}

// accessMode maps a claim's access modes to a CSI one: one node's.
func accessMode(modes []v1.PersistentVolumeAccessMode) (csipb.VolumeCapability_AccessMode_Mode, error) {
	mode := csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER
	for _, m := range modes {
		switch m {
		case v1.ReadWriteOnce:
		case v1.ReadWriteOncePod:
			mode = csipb.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER
		default:
			return 0, fmt.Errorf("access mode %s: a dindstore volume is written by one daemon on one node "+
				"(ReadWriteOnce or ReadWriteOncePod)", m)
		}
	}
	return mode, nil
}

// contentSource is what a claim's volume starts from: its dataSource,
// another claim of this driver or a VolumeSnapshot of one; nil for none.
func (p *Provisioner) contentSource(ctx context.Context, claim *v1.PersistentVolumeClaim) (*csipb.VolumeContentSource, error) {
	src := claim.Spec.DataSource
	if src == nil {
		return nil, nil
	}
	group := ""
	if src.APIGroup != nil {
		group = *src.APIGroup
	}
	switch {
	case src.Kind == "PersistentVolumeClaim" && group == "":
		return p.claimSource(ctx, claim.Namespace, src.Name)
	case src.Kind == "VolumeSnapshot" && group == snapshotv1.GroupName:
		return p.snapshotSource(ctx, claim.Namespace, src.Name)
	}
	return nil, fmt.Errorf("data source %s %s: a dindstore volume starts from another dindstore claim "+
		"or a VolumeSnapshot (%s) of one", src.Kind, src.Name, snapshotv1.GroupName)
}

// claimSource is the volume of the claim to clone.
func (p *Provisioner) claimSource(ctx context.Context, ns, name string) (*csipb.VolumeContentSource, error) {
	from, err := p.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("the claim to clone: %w", err)
	}
	if from.Spec.VolumeName == "" {
		return nil, fmt.Errorf("the claim to clone, %s, is not bound yet", name)
	}
	pv, err := p.Client.CoreV1().PersistentVolumes().Get(ctx, from.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("the volume to clone: %w", err)
	}
	if pv.Spec.CSI == nil || pv.Spec.CSI.Driver != p.Driver {
		return nil, fmt.Errorf("claim %s is not a %s volume", name, p.Driver)
	}
	if node := nodeOf(pv); node != "" && node != p.Node {
		return nil, fmt.Errorf("%w: claim %s's volume is on node %s, this is %s: give the pod node affinity "+
			"to %s (%s=%s)", errSourceElsewhere, name, node, p.Node, node, TopologyKey, node)
	}
	return &csipb.VolumeContentSource{Type: &csipb.VolumeContentSource_Volume{
		Volume: &csipb.VolumeContentSource_VolumeSource{VolumeId: pv.Spec.CSI.VolumeHandle}}}, nil
}

// snapshotSource is the snapshot a VolumeSnapshot is bound to, once ready.
func (p *Provisioner) snapshotSource(ctx context.Context, ns, name string) (*csipb.VolumeContentSource, error) {
	if p.Snapshots == nil {
		return nil, fmt.Errorf("VolumeSnapshot %s: this provisioner has no snapshot client (the snapshot CRDs are not installed?)", name)
	}
	snap, err := p.Snapshots.SnapshotV1().VolumeSnapshots(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("the snapshot to restore: %w", err)
	}
	st := snap.Status
	if st == nil || st.ReadyToUse == nil || !*st.ReadyToUse || st.BoundVolumeSnapshotContentName == nil {
		return nil, fmt.Errorf("VolumeSnapshot %s is not ready to use yet", name)
	}
	content, err := p.Snapshots.SnapshotV1().VolumeSnapshotContents().Get(ctx, *st.BoundVolumeSnapshotContentName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("the snapshot content of %s: %w", name, err)
	}
	if content.Spec.Driver != p.Driver {
		return nil, fmt.Errorf("VolumeSnapshot %s is a snapshot of driver %s, not %s", name, content.Spec.Driver, p.Driver)
	}
	if content.Status == nil || content.Status.SnapshotHandle == nil {
		return nil, fmt.Errorf("VolumeSnapshotContent %s has no snapshot handle yet", content.Name)
	}
	return &csipb.VolumeContentSource{Type: &csipb.VolumeContentSource_Snapshot{
		Snapshot: &csipb.VolumeContentSource_SnapshotSource{SnapshotId: *content.Status.SnapshotHandle}}}, nil
}

// volume is the PersistentVolume of a volume made for opts.
func (p *Provisioner) volume(opts controller.ProvisionOptions, vol *csipb.Volume) *v1.PersistentVolume {
	reclaim := v1.PersistentVolumeReclaimDelete
	if opts.StorageClass.ReclaimPolicy != nil {
		reclaim = *opts.StorageClass.ReclaimPolicy
	}
	mode := v1.PersistentVolumeFilesystem
	return &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: opts.PVName},
		Spec: v1.PersistentVolumeSpec{
			PersistentVolumeReclaimPolicy: reclaim,
			AccessModes:                   opts.PVC.Spec.AccessModes,
			VolumeMode:                    &mode,
			MountOptions:                  opts.StorageClass.MountOptions,
			Capacity:                      v1.ResourceList{v1.ResourceStorage: *resource.NewQuantity(vol.GetCapacityBytes(), resource.BinarySI)},
			PersistentVolumeSource: v1.PersistentVolumeSource{CSI: &v1.CSIPersistentVolumeSource{
				Driver: p.Driver, VolumeHandle: vol.GetVolumeId(), FSType: opts.StorageClass.Parameters["fsType"],
				VolumeAttributes: vol.GetVolumeContext()}},
			NodeAffinity: &v1.VolumeNodeAffinity{Required: &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{
				MatchExpressions: []v1.NodeSelectorRequirement{{Key: TopologyKey, Operator: v1.NodeSelectorOpIn,
					Values: []string{p.Node}}}}}}},
		},
	}
}

// Delete removes the volume of a PersistentVolume of this node.
func (p *Provisioner) Delete(ctx context.Context, pv *v1.PersistentVolume) error {
	if !p.owns(pv) {
		return &controller.IgnoredError{Reason: "the volume is another node's"}
	}
	_, err := p.CSI.DeleteVolume(ctx, &csipb.DeleteVolumeRequest{VolumeId: pv.Spec.CSI.VolumeHandle})
	if err == nil {
		p.changed()
	}
	return err
}

// changed tells Changed, when set.
func (p *Provisioner) changed() {
	if p.Changed != nil {
		p.Changed()
	}
}

// owns tells a PersistentVolume of this driver on this node.
func (p *Provisioner) owns(pv *v1.PersistentVolume) bool {
	return pv.Spec.CSI != nil && pv.Spec.CSI.Driver == p.Driver && nodeOf(pv) == p.Node
}

// nodeOf is the node a PersistentVolume's affinity names ("" for none).
func nodeOf(pv *v1.PersistentVolume) string {
	if pv.Spec.NodeAffinity == nil || pv.Spec.NodeAffinity.Required == nil {
		return ""
	}
	for _, term := range pv.Spec.NodeAffinity.Required.NodeSelectorTerms {
		for _, e := range term.MatchExpressions {
			if e.Key == TopologyKey && len(e.Values) == 1 {
				return e.Values[0]
			}
		}
	}
	return ""
}
