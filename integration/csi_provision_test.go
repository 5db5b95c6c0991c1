//go:build linux

package integration

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/dindstore/dindstore/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestCSIProvisioned: the Controller service makes persistent volumes on
// its node: with the node's topology, capped as the claim asks, refused
// for another node's topology, for unknown parameters and beyond
// --max-size; a clone of a volume (its content source) starts with the
// source's files while both are published; a volume published for one
// pod is refused to a second on the node; a published volume is not
// deleted; GetCapacity shrinks by what a published volume may still
// write, and by the cap of a volume made and not yet used (its pod is on
// its way), not of one used and idle; deleting the volumes leaves nothing.
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
	if pending := capacityOf(t, ctrl); pending > before-400<<20 {
		t.Errorf("capacity %d with a 512 MiB volume made for a pod on its way, %d before", pending, before)
	}
	v := csiVolume(src.GetVolumeId(), filepath.Join(dir, "src"), "ci", "runner-a", nil)
	v.VolumeContext["csi.storage.k8s.io/ephemeral"] = "false"
	publishVolume(t, node, v)
	must(t, os.WriteFile(filepath.Join(v.TargetPath, "warm-layer"), []byte("w"), 0o644))
	second := csiVolume(src.GetVolumeId(), filepath.Join(dir, "src-2"), "ci", "runner-b", v.VolumeContext)
	_, err = node.NodePublishVolume(ctx, second)
	wantCode(t, err, codes.FailedPrecondition, "serves one pod") // a second pod on the node (ReadWriteOnce)
	if after := capacityOf(t, ctrl); after > before-400<<20 {
		t.Errorf("capacity %d with a 512 MiB volume published, %d before", after, before)
	}
	_, err = ctrl.DeleteVolume(ctx, &csipb.DeleteVolumeRequest{VolumeId: src.GetVolumeId()})
	wantCode(t, err, codes.FailedPrecondition)
	_, err = ctrl.CreateSnapshot(ctx, &csipb.CreateSnapshotRequest{Name: "snap-busy", SourceVolumeId: src.GetVolumeId()})
	wantCode(t, err, codes.FailedPrecondition) // a snapshot is data at rest, never a running daemon's
	unpublishVolume(t, node, v)
	if idle := capacityOf(t, ctrl); idle < before-100<<20 {
		t.Errorf("capacity %d with the volume used and idle, %d before", idle, before)
	}
	checkSnapshots(t, ctrl, node, dir, root, src, create, here)

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
	wantCode(t, err, codes.NotFound, "not a volume or snapshot this plugin made")
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

// checkSnapshots snapshots the idle volume src, changes src, restores the
// snapshot into a new volume (which has src's content at the snapshot,
// not the change), and deletes both.
func checkSnapshots(t *testing.T, ctrl csipb.ControllerClient, node csipb.NodeClient, dir, root string, src *csipb.Volume,
	create func(string, int64, map[string]string, *csipb.VolumeContentSource, *csipb.TopologyRequirement) (*csipb.Volume, error),
	here *csipb.TopologyRequirement) {
	t.Helper()
	ctx := context.Background()
	snap := func(name, vol string) (*csipb.Snapshot, error) {
		resp, err := ctrl.CreateSnapshot(ctx, &csipb.CreateSnapshotRequest{Name: name, SourceVolumeId: vol})
		return resp.GetSnapshot(), err
	}
	s1, err := snap("snapcontent-1", src.GetVolumeId())
	must(t, err)
	if !s1.GetReadyToUse() || s1.GetSourceVolumeId() != src.GetVolumeId() || s1.GetSizeBytes() != 512<<20 {
		t.Errorf("the snapshot: %+v", s1)
	}
	again, err := snap("snapcontent-1", src.GetVolumeId())
	if err != nil || again.GetSnapshotId() != s1.GetSnapshotId() {
		t.Errorf("the same snapshot again: %+v, %v", again, err)
	}
	_, err = snap("snapcontent-1", "pv.0000")
	wantCode(t, err, codes.AlreadyExists)
	_, err = snap("snapcontent-2", "k8s.ci.build")
	wantCode(t, err, codes.NotFound)
	_, err = create("pvc-from-snap-key", 256<<20, map[string]string{"from": s1.GetSnapshotId()}, nil, here)
	wantCode(t, err, codes.InvalidArgument, "the plugin's volumes")

	v := csiVolume(src.GetVolumeId(), filepath.Join(dir, "src2"), "ci", "runner-b", map[string]string{"csi.storage.k8s.io/ephemeral": "false"})
	publishVolume(t, node, v)
	must(t, os.WriteFile(filepath.Join(v.TargetPath, "after-snapshot"), []byte("x"), 0o644))
	unpublishVolume(t, node, v)

	fromSnap := &csipb.VolumeContentSource{Type: &csipb.VolumeContentSource_Snapshot{
		Snapshot: &csipb.VolumeContentSource_SnapshotSource{SnapshotId: s1.GetSnapshotId()}}}
	restored, err := create("pvc-restored", 512<<20, nil, fromSnap, here)
	must(t, err)
	r := csiVolume(restored.GetVolumeId(), filepath.Join(dir, "restored"), "ci", "runner-c", map[string]string{"csi.storage.k8s.io/ephemeral": "false"})
	publishVolume(t, node, r)
	if _, err := os.Stat(filepath.Join(r.TargetPath, "warm-layer")); err != nil {
		t.Errorf("the restored volume lacks the snapshot's file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(r.TargetPath, "after-snapshot")); err == nil {
		t.Error("the restored volume has a file written after the snapshot")
	}
	unpublishVolume(t, node, r)
	_, err = create("pvc-no-snap", 256<<20, nil, &csipb.VolumeContentSource{Type: &csipb.VolumeContentSource_Snapshot{
		Snapshot: &csipb.VolumeContentSource_SnapshotSource{SnapshotId: "snap.0000"}}}, here)
	wantCode(t, err, codes.NotFound)

	checkPinned(t, root, src.GetVolumeId(), s1.GetSnapshotId(), restored.GetVolumeId())

	list, err := ctrl.ListSnapshots(ctx, &csipb.ListSnapshotsRequest{SourceVolumeId: src.GetVolumeId()})
	if err != nil || len(list.GetEntries()) != 1 || list.GetEntries()[0].GetSnapshot().GetSnapshotId() != s1.GetSnapshotId() {
		t.Errorf("snapshots of %s: %+v, %v", src.GetVolumeId(), list, err)
	}
	for _, del := range []func() error{
		func() error {
			_, err := ctrl.DeleteVolume(ctx, &csipb.DeleteVolumeRequest{VolumeId: restored.GetVolumeId()})
			return err
		},
		func() error {
			_, err := ctrl.DeleteSnapshot(ctx, &csipb.DeleteSnapshotRequest{SnapshotId: s1.GetSnapshotId()})
			return err
		},
		func() error {
			_, err := ctrl.DeleteSnapshot(ctx, &csipb.DeleteSnapshotRequest{SnapshotId: s1.GetSnapshotId()})
			return err
		},
	} {
		must(t, del())
	}
}

// checkPinned: provisioned volumes and snapshots are pinned to their
// Kubernetes objects: the harshest prune passes them, `rm` refuses them
// (exit 75) unless forced, and a clone made of one by hand is not pinned.
func checkPinned(t *testing.T, root string, keys ...string) {
	t.Helper()
	if r := dindstore(t, root, "clone", keys[0], "by-hand"); r.code != 0 {
		t.Fatalf("clone %s: exit %d: %s", keys[0], r.code, r.stderr)
	}
	if r := dindstore(t, root, "prune", "--max-count", "0", "--include-warm"); r.code != 0 {
		t.Fatalf("prune: exit %d: %s", r.code, r.stderr)
	}
	ls := listJSON(t, root)
	for _, k := range keys {
		if e, ok := ls[k]; !ok || e.Pinned == "" {
			t.Errorf("after the prune, %s: %+v (present %v)", k, e, ok)
		}
	}
	if _, ok := ls["by-hand"]; ok || len(ls) != len(keys) {
		t.Errorf("the prune left %v", ls)
	}
	if r := dindstore(t, root, "rm", keys[0]); r.code != 75 || !strings.Contains(r.stderr, "pinned") {
		t.Errorf("rm of a provisioned volume: exit %d: %s", r.code, r.stderr)
	}
}

// capacityOf is GetCapacity on this node.
func capacityOf(t *testing.T, ctrl csipb.ControllerClient) int64 {
	t.Helper()
	resp, err := ctrl.GetCapacity(context.Background(), &csipb.GetCapacityRequest{
		AccessibleTopology: &csipb.Topology{Segments: map[string]string{csi.TopologyKey: "it-node"}}})
	must(t, err)
	return resp.GetAvailableCapacity()
}

// TestCSIProvisionBurst: claims made at once (the provisioner runs several
// workers) are admitted against one another: four volumes each taking 60%
// of the node's room, asked together, make one; the others are refused
// RESOURCE_EXHAUSTED (put back to the scheduler), nothing half made; the
// one made is promised to its pod (checkPromised).
func TestCSIProvisionBurst(t *testing.T) {
	dir, root, plugin, node := csiNode(t, "--max-size", "1Ti")
	ctrl := csipb.NewControllerClient(plugin.conn())
	size := capacityOf(t, ctrl) * 6 / 10 &^ (1<<20 - 1)
	codesOf := make(chan codes.Code, 4)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := ctrl.CreateVolume(context.Background(), &csipb.CreateVolumeRequest{Name: fmt.Sprintf("pvc-burst-%d", i),
				CapacityRange: &csipb.CapacityRange{RequiredBytes: size}, VolumeCapabilities: []*csipb.VolumeCapability{{
					AccessType: &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{}},
					AccessMode: &csipb.VolumeCapability_AccessMode{Mode: csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER}}}})
			if err != nil && status.Code(err) != codes.ResourceExhausted {
				t.Errorf("volume %d: %v", i, err)
			}
			codesOf <- status.Code(err)
		}()
	}
	wg.Wait()
	close(codesOf)
	made := 0
	for c := range codesOf {
		if c == codes.OK {
			made++
		}
	}
	ls := listJSON(t, root)
	if made != 1 || len(ls) != 1 {
		t.Fatalf("4 volumes of %d bytes each asked at once: %d made, the root has %v", size, made, ls)
	}
	checkPromised(t, dir, node, slices.Collect(maps.Keys(ls))[0], size)
	for k := range listJSON(t, root) {
		_, err := ctrl.DeleteVolume(context.Background(), &csipb.DeleteVolumeRequest{VolumeId: k})
		must(t, err)
	}
}

// checkPromised: a provisioned volume not used yet is promised to its pod:
// an inline volume that would take its room is refused at publish, the
// volume itself is not; once used and idle it reserves nothing.
func checkPromised(t *testing.T, dir string, node csipb.NodeClient, key string, size int64) {
	t.Helper()
	inline := csiVolume("inline", filepath.Join(dir, "inline"), "ci", "runner-i", map[string]string{"size": fmt.Sprintf("%dMi", size>>20)})
	_, err := node.NodePublishVolume(context.Background(), inline)
	wantCode(t, err, codes.ResourceExhausted)
	v := csiVolume(key, filepath.Join(dir, "pv"), "ci", "runner-p", nil)
	v.VolumeContext["csi.storage.k8s.io/ephemeral"] = "false"
	publishVolume(t, node, v)
	unpublishVolume(t, node, v)
	publishVolume(t, node, inline)
	unpublishVolume(t, node, inline)
}
