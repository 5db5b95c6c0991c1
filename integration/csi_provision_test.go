//go:build linux

package integration

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/dindstore/dindstore/csi"
	"google.golang.org/grpc/codes"
)

// TestCSIProvisioned: the Controller service makes persistent volumes on
// its node: with the node's topology, capped as the claim asks, refused
// for another node's topology, for unknown parameters and beyond
// --max-size; a clone of a volume (its content source) starts with the
// source's files while both are published; a published volume is not
// deleted; GetCapacity shrinks by what a published volume may still
// write; deleting the volumes leaves nothing.
func TestCSIProvisioned(t *testing.T) {
	dir, root, plugin, node := csiNode(t, "--default-size", "256Mi", "--max-size", "2Gi")
	conn := plugin.conn()
	ctrl := csipb.NewControllerClient(conn)
	ctx := context.Background()
	mount := []*csipb.VolumeCapability{{
		AccessType: &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{}},
		AccessMode: &csipb.VolumeCapability_AccessMode{Mode: csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER}}}
	here := &csipb.TopologyRequirement{Requisite: []*csipb.Topology{{Segments: map[string]string{csi.TopologyKey: "it-node"}}}}
	create := func(name string, size int64, params map[string]string, src *csipb.VolumeContentSource, topo *csipb.TopologyRequirement) (*csipb.Volume, error) {
		resp, err := ctrl.CreateVolume(ctx, &csipb.CreateVolumeRequest{Name: name, VolumeCapabilities: mount,
			CapacityRange: &csipb.CapacityRange{RequiredBytes: size}, Parameters: params,
			VolumeContentSource: src, AccessibilityRequirements: topo})
		return resp.GetVolume(), err
	}
	_, err := create("elsewhere", 256<<20, nil, nil, &csipb.TopologyRequirement{Requisite: []*csipb.Topology{{Segments: map[string]string{csi.TopologyKey: "other-node"}}}})
	wantCode(t, err, codes.ResourceExhausted, "not in the volume's topology")
	_, err = create("typo", 256<<20, map[string]string{"fstype": "xfs"}, nil, here)
	wantCode(t, err, codes.InvalidArgument, "unknown")
	_, err = create("huge", 3<<30, nil, nil, here)
	wantCode(t, err, codes.OutOfRange, "max-size")

	before := capacityOf(t, ctrl)
	src, err := create("pvc-src", 512<<20, map[string]string{"fsType": "ext4"}, nil, here)
	must(t, err)
	if src.GetCapacityBytes() != 512<<20 || src.GetAccessibleTopology()[0].GetSegments()[csi.TopologyKey] != "it-node" {
		t.Fatalf("the volume: %+v", src)
	}
	v := csiVolume(src.GetVolumeId(), filepath.Join(dir, "src"), "ci", "runner-a", nil)
	v.VolumeContext["csi.storage.k8s.io/ephemeral"] = "false"
	publishVolume(t, node, v)
	must(t, os.WriteFile(filepath.Join(v.TargetPath, "warm-layer"), []byte("w"), 0o644))
	if after := capacityOf(t, ctrl); after > before-400<<20 {
		t.Errorf("capacity %d with a 512 MiB volume published, %d before", after, before)
	}
	_, err = ctrl.DeleteVolume(ctx, &csipb.DeleteVolumeRequest{VolumeId: src.GetVolumeId()})
	wantCode(t, err, codes.FailedPrecondition)
	unpublishVolume(t, node, v)

	clone, err := create("pvc-clone", 1<<30, nil, &csipb.VolumeContentSource{Type: &csipb.VolumeContentSource_Volume{
		Volume: &csipb.VolumeContentSource_VolumeSource{VolumeId: src.GetVolumeId()}}}, here)
	must(t, err)
	if clone.GetCapacityBytes() != 1<<30 {
		t.Errorf("a clone asked 1 GiB of a 512 MiB source: %d bytes", clone.GetCapacityBytes())
	}
	var pubs []*csipb.NodePublishVolumeRequest
	for _, id := range []string{src.GetVolumeId(), clone.GetVolumeId()} {
		v := csiVolume(id, filepath.Join(dir, id), "ci", "runner-"+id, map[string]string{"csi.storage.k8s.io/ephemeral": "false"})
		publishVolume(t, node, v)
		pubs = append(pubs, v)
		if _, err := os.Stat(filepath.Join(v.TargetPath, "warm-layer")); err != nil {
			t.Errorf("volume %s lacks the source's file: %v", id, err)
		}
	}
	_, err = create("pvc-missing", 256<<20, nil, &csipb.VolumeContentSource{Type: &csipb.VolumeContentSource_Volume{
		Volume: &csipb.VolumeContentSource_VolumeSource{VolumeId: "pv.0000"}}}, here)
	wantCode(t, err, codes.NotFound)
	_, err = create("pvc-other", 256<<20, nil, &csipb.VolumeContentSource{Type: &csipb.VolumeContentSource_Volume{
		Volume: &csipb.VolumeContentSource_VolumeSource{VolumeId: "k8s.ci.build"}}}, here) // a namespace's cacheKey
	wantCode(t, err, codes.NotFound, "not a volume this plugin provisioned")
	for _, v := range pubs {
		unpublishVolume(t, node, v)
		if _, err := ctrl.DeleteVolume(ctx, &csipb.DeleteVolumeRequest{VolumeId: v.VolumeId}); err != nil {
			t.Errorf("delete %s: %v", v.VolumeId, err)
		}
	}
	if ls := listJSON(t, root); len(ls) != 0 {
		t.Errorf("with the volumes deleted: %v", ls)
	}
	plugin.stopLeavingNothing(t, dir)
}

// capacityOf is GetCapacity on this node.
func capacityOf(t *testing.T, ctrl csipb.ControllerClient) int64 {
	t.Helper()
	resp, err := ctrl.GetCapacity(context.Background(), &csipb.GetCapacityRequest{
		AccessibleTopology: &csipb.Topology{Segments: map[string]string{csi.TopologyKey: "it-node"}}})
	must(t, err)
	return resp.GetAvailableCapacity()
}
