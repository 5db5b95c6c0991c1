package provision

import (
	"context"
	"errors"
	"strings"
	"testing"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	snapfake "github.com/kubernetes-csi/external-snapshotter/client/v8/clientset/versioned/fake"
	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/sig-storage-lib-external-provisioner/v13/controller"
)

// sourceFixture is a provisioner for driver d on node n1 whose API holds
// a bound claim "warm" (volume pv.warm, on n1), a claim "far" bound to a
// volume of node n2, a ready snapshot "snap" of it, a snapshot
// "pending" not ready yet and a snapshot "foreign" of another driver.
func sourceFixture() *Provisioner {
	yes, no := true, false
	str := func(s string) *string { return &s }
	client := fake.NewSimpleClientset(
		&v1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "warm", Namespace: "ns"},
			Spec: v1.PersistentVolumeClaimSpec{VolumeName: "pvc-1"}},
		&v1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "unbound", Namespace: "ns"}},
		&v1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "far", Namespace: "ns"},
			Spec: v1.PersistentVolumeClaimSpec{VolumeName: "pvc-2"}},
		volumeOn("pvc-1", "pv.warm", "n1"), volumeOn("pvc-2", "pv.far", "n2"))
	snap := func(name, content string, ready *bool) *snapshotv1.VolumeSnapshot {
		return &snapshotv1.VolumeSnapshot{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"},
			Status: &snapshotv1.VolumeSnapshotStatus{ReadyToUse: ready, BoundVolumeSnapshotContentName: str(content)}}
	}
	content := func(name, driver string) *snapshotv1.VolumeSnapshotContent {
		return &snapshotv1.VolumeSnapshotContent{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:   snapshotv1.VolumeSnapshotContentSpec{Driver: driver},
			Status: &snapshotv1.VolumeSnapshotContentStatus{SnapshotHandle: str("snap." + name)}}
	}
	snaps := snapfake.NewSimpleClientset(snap("snap", "c1", &yes), snap("pending", "c1", &no),
		snap("foreign", "c2", &yes), content("c1", "d"), content("c2", "other"))
	return &Provisioner{Driver: "d", Node: "n1", Client: client, Snapshots: snaps}
}

// TestContentSource: a claim clones another claim's volume or restores a
// ready snapshot of this driver; anything else is refused with a reason.
func TestContentSource(t *testing.T) {
	p := sourceFixture()
	core, group := "", snapshotv1.GroupName
	claim := func(kind string, apiGroup *string, name string) *v1.PersistentVolumeClaim {
		return &v1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "new", Namespace: "ns"},
			Spec: v1.PersistentVolumeClaimSpec{DataSource: &v1.TypedLocalObjectReference{Kind: kind, APIGroup: apiGroup, Name: name}}}
	}
	ctx := context.Background()
	if src, err := p.contentSource(ctx, claim("PersistentVolumeClaim", nil, "warm")); err != nil ||
		src.GetVolume().GetVolumeId() != "pv.warm" {
		t.Errorf("clone: %v %v", src, err)
	}
	if src, err := p.contentSource(ctx, claim("PersistentVolumeClaim", &core, "warm")); err != nil || src.GetVolume() == nil {
		t.Errorf("clone with the core group spelt out: %v %v", src, err)
	}
	if src, err := p.contentSource(ctx, claim("VolumeSnapshot", &group, "snap")); err != nil ||
		src.GetSnapshot().GetSnapshotId() != "snap.c1" {
		t.Errorf("restore: %v %v", src, err)
	}
	for name, c := range map[string]*v1.PersistentVolumeClaim{
		"not ready yet":         claim("VolumeSnapshot", &group, "pending"),
		"another driver":        claim("VolumeSnapshot", &group, "foreign"),
		"not found":             claim("VolumeSnapshot", &group, "none"),
		"not bound yet":         claim("PersistentVolumeClaim", nil, "unbound"),
		"a snapshot, no group":  claim("VolumeSnapshot", nil, "snap"),
		"a populator's kind":    claim("Bucket", &group, "snap"),
		"the claim is not here": claim("PersistentVolumeClaim", nil, "none"),
	} {
		if src, err := p.contentSource(ctx, c); err == nil {
			t.Errorf("%s: accepted as %v", name, src)
		}
	}
	p.Snapshots = nil
	if _, err := p.contentSource(ctx, claim("VolumeSnapshot", &group, "snap")); err == nil ||
		!strings.Contains(err.Error(), "no snapshot client") {
		t.Errorf("without the snapshot API: %v", err)
	}
}

// volumeOn is a PersistentVolume of driver d on node.
func volumeOn(name, handle, node string) *v1.PersistentVolume {
	return &v1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.PersistentVolumeSpec{
		PersistentVolumeSource: v1.PersistentVolumeSource{CSI: &v1.CSIPersistentVolumeSource{Driver: "d", VolumeHandle: handle}},
		NodeAffinity: &v1.VolumeNodeAffinity{Required: &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{
			MatchExpressions: []v1.NodeSelectorRequirement{{Key: TopologyKey, Operator: v1.NodeSelectorOpIn, Values: []string{node}}}}}}}}}
}

// TestCloneOfAnotherNode: a claim cloning a volume of another node is put
// back to the scheduler (its node may hold no source), saying where the
// source is; nothing is asked of the plugin.
func TestCloneOfAnotherNode(t *testing.T) {
	p := sourceFixture()
	claim := &v1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "new", Namespace: "ns"},
		Spec: v1.PersistentVolumeClaimSpec{AccessModes: []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
			DataSource: &v1.TypedLocalObjectReference{Kind: "PersistentVolumeClaim", Name: "far"}}}
	_, state, err := p.Provision(context.Background(), controller.ProvisionOptions{SelectedNodeName: "n1",
		PVC: claim, PVName: "pvc-3", StorageClass: &storagev1.StorageClass{}})
	if !errors.Is(err, errSourceElsewhere) || state != controller.ProvisioningReschedule || !strings.Contains(err.Error(), "node n2") {
		t.Errorf("a clone of n2's volume on n1: %v, %v", state, err)
	}
}
