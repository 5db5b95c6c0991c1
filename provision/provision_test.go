package provision

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/sig-storage-lib-external-provisioner/v13/controller"
)

// room is a Controller client whose GetCapacity says avail.
type room struct {
	csipb.ControllerClient
	avail atomic.Int64
}

func newRoom(avail int64) *room {
	r := &room{}
	r.avail.Store(avail)
	return r
}

func (r *room) GetCapacity(context.Context, *csipb.GetCapacityRequest, ...grpc.CallOption) (*csipb.GetCapacityResponse, error) {
	return &csipb.GetCapacityResponse{AvailableCapacity: r.avail.Load()}, nil
}

// CreateVolume takes the volume's size from the room.
func (r *room) CreateVolume(_ context.Context, req *csipb.CreateVolumeRequest, _ ...grpc.CallOption) (*csipb.CreateVolumeResponse, error) {
	size := req.GetCapacityRange().GetRequiredBytes()
	r.avail.Add(-size)
	return &csipb.CreateVolumeResponse{Volume: &csipb.Volume{VolumeId: "pv." + req.GetName(), CapacityBytes: size}}, nil
}

// DeleteVolume gives 1 GiB back.
func (r *room) DeleteVolume(context.Context, *csipb.DeleteVolumeRequest, ...grpc.CallOption) (*csipb.DeleteVolumeResponse, error) {
	r.avail.Add(1 << 30)
	return &csipb.DeleteVolumeResponse{}, nil
}

// TestCapacitySync: one object per class of the driver, for this node's
// topology, updated when the room changes, removed with its class; other
// drivers' classes are left alone.
func TestCapacitySync(t *testing.T) {
	ctx := context.Background()
	client := fake.NewSimpleClientset(
		&storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "dindstore"}, Provisioner: "d"},
		&storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "other"}, Provisioner: "x"})
	r := newRoom(1 << 30)
	c := &Capacity{CSI: r, Client: client, Driver: "d", Node: "n1", Namespace: "ns"}
	list := func() []storagev1.CSIStorageCapacity {
		l, err := client.StorageV1().CSIStorageCapacities("ns").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return l.Items
	}
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	got := list()
	if len(got) != 1 || got[0].StorageClassName != "dindstore" || got[0].Capacity.Value() != 1<<30 ||
		got[0].NodeTopology.MatchLabels[TopologyKey] != "n1" {
		t.Fatalf("objects: %+v", got)
	}
	r.avail.Store(1 << 20)
	if err := c.Sync(ctx); err != nil || list()[0].Capacity.Value() != 1<<20 {
		t.Fatalf("after the room shrank: %+v %v", list(), err)
	}
	c.Owner = &metav1.OwnerReference{APIVersion: "v1", Kind: "Node", Name: "n1", UID: "uid-1"}
	if err := c.Sync(ctx); err != nil || len(list()[0].OwnerReferences) != 1 || list()[0].OwnerReferences[0].UID != "uid-1" {
		t.Fatalf("owned by the node: %+v %v", list(), err)
	}
	if err := c.Withdraw(ctx); err != nil || len(list()) != 0 {
		t.Fatalf("withdrawn: %+v %v", list(), err)
	}
	if err := c.Sync(ctx); err != nil || len(list()) != 1 {
		t.Fatalf("published again: %+v %v", list(), err)
	}
	if err := client.StorageV1().StorageClasses().Delete(ctx, "dindstore", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Sync(ctx); err != nil || len(list()) != 0 {
		t.Fatalf("with the class gone: %+v %v", list(), err)
	}
}

// TestCapacityChanged: a volume made or deleted is published at once, not
// an interval later.
func TestCapacityChanged(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	client := fake.NewSimpleClientset(&storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "dindstore"}, Provisioner: "d"})
	r := newRoom(4 << 30)
	c := &Capacity{CSI: r, Client: client, Driver: "d", Node: "n1", Namespace: "ns"}
	ran := make(chan struct{})
	go func() { c.Run(ctx, time.Hour, t.Logf); close(ran) }()
	t.Cleanup(func() { cancel(); <-ran }) // Run logs through t: it ends before the test does
	published := func(want int64) {
		t.Helper()
		for range 500 { // the publish runs beside the test: wait for it, boundedly
			l, err := client.StorageV1().CSIStorageCapacities("ns").List(ctx, metav1.ListOptions{})
			if err == nil && len(l.Items) == 1 && l.Items[0].Capacity.Value() == want {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("capacity %d never published", want)
	}
	published(4 << 30)
	p := &Provisioner{CSI: r, Driver: "d", Node: "n1", Client: client, Changed: c.Changed}
	claim := &v1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns"},
		Spec: v1.PersistentVolumeClaimSpec{AccessModes: []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
			Resources: v1.VolumeResourceRequirements{Requests: v1.ResourceList{v1.ResourceStorage: resource.MustParse("1Gi")}}}}
	pv, _, err := p.Provision(ctx, controller.ProvisionOptions{SelectedNodeName: "n1", PVC: claim, PVName: "pvc-1",
		StorageClass: &storagev1.StorageClass{}})
	if err != nil {
		t.Fatal(err)
	}
	published(3 << 30)
	if err := p.Delete(ctx, pv); err != nil {
		t.Fatal(err)
	}
	published(4 << 30)
}

// TestAccessModes: one node's modes only.
func TestAccessModes(t *testing.T) {
	if m, err := accessMode([]v1.PersistentVolumeAccessMode{v1.ReadWriteOncePod}); err != nil ||
		m != csipb.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER {
		t.Errorf("ReadWriteOncePod: %v %v", m, err)
	}
	if _, err := accessMode([]v1.PersistentVolumeAccessMode{v1.ReadWriteMany}); err == nil {
		t.Error("ReadWriteMany accepted")
	}
}

// TestOwns: a volume of this driver with this node's affinity only.
func TestOwns(t *testing.T) {
	p := &Provisioner{Driver: "d", Node: "n1"}
	pv := func(driver, node string) *v1.PersistentVolume {
		return &v1.PersistentVolume{Spec: v1.PersistentVolumeSpec{
			PersistentVolumeSource: v1.PersistentVolumeSource{CSI: &v1.CSIPersistentVolumeSource{Driver: driver}},
			NodeAffinity: &v1.VolumeNodeAffinity{Required: &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{
				MatchExpressions: []v1.NodeSelectorRequirement{{Key: TopologyKey, Operator: v1.NodeSelectorOpIn, Values: []string{node}}}}}}}}}
	}
	if !p.owns(pv("d", "n1")) || p.owns(pv("d", "n2")) || p.owns(pv("x", "n1")) {
		t.Error("owns answers wrong")
	}
}
