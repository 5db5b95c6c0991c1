package provision

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// labelNode marks the CSIStorageCapacity objects of a node.
const labelNode = "dindstore.io/capacity-node"

// Capacity publishes a node's room for each StorageClass of the driver as
// CSIStorageCapacity objects (the plugin's GetCapacity), which the
// scheduler reads before it places a claim that waits for its consumer.
type Capacity struct {
	CSI    csipb.ControllerClient
	Client kubernetes.Interface
	Driver string
	Node   string
	// Namespace holds the objects (the plugin's).
	Namespace string
	// Owner, when set, owns the objects (the Node: its deletion removes
	// them).
	Owner *metav1.OwnerReference

	once sync.Once
	kick chan struct{}
}

// Changed asks Run to publish again now: a volume was made or deleted,
// and the scheduler should not wait an interval to see it.
func (c *Capacity) Changed() {
	select {
	case c.kicks() <- struct{}{}:
	default: // a publish is already asked for
	}
}

// kicks is the channel Changed nudges Run through.
func (c *Capacity) kicks() chan struct{} {
	c.once.Do(func() { c.kick = make(chan struct{}, 1) })
	return c.kick
}

// Run publishes now, every interval and when Changed until ctx ends,
// then withdraws the node's objects: a node whose provisioner is gone
// offers no room. logf is told what failed.
func (c *Capacity) Run(ctx context.Context, interval time.Duration, logf func(string, ...any)) {
	for {
		if err := c.Sync(ctx); err != nil && ctx.Err() == nil {
			logf("publish capacity: %v", err)
		}
		select {
		case <-ctx.Done():
			end, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := c.Withdraw(end); err != nil {
				logf("withdraw capacity: %v", err)
			}
			return
		case <-time.After(interval):
		case <-c.kicks():
		}
	}
}

// Withdraw deletes the node's objects.
func (c *Capacity) Withdraw(ctx context.Context) error { return c.removeStale(ctx, nil) }

// Sync makes the node's objects say its room now, one per StorageClass of
// the driver, and removes those of classes that are gone.
func (c *Capacity) Sync(ctx context.Context) error {
	classes, err := c.Client.StorageV1().StorageClasses().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	want := map[string]bool{}
	var errs []error
	for _, class := range classes.Items {
		if class.Provisioner != c.Driver {
			continue
		}
		name := c.objectName(class.Name)
		want[name] = true
		errs = append(errs, c.publish(ctx, name, &class))
	}
	return errors.Join(append(errs, c.removeStale(ctx, want))...)
}

// objectName names the node's object for a class (a DNS subdomain).
func (c *Capacity) objectName(class string) string {
	sum := sha256.Sum256([]byte(c.Node + "/" + class))
	return "dindstore-" + hex.EncodeToString(sum[:10])
}

// publish creates or updates the object for class.
func (c *Capacity) publish(ctx context.Context, name string, class *storagev1.StorageClass) error {
	resp, err := c.CSI.GetCapacity(ctx, &csipb.GetCapacityRequest{Parameters: class.Parameters,
		AccessibleTopology: &csipb.Topology{Segments: map[string]string{TopologyKey: c.Node}}})
	if err != nil {
		return fmt.Errorf("capacity of class %s: %w", class.Name, err)
	}
	obj := &storagev1.CSIStorageCapacity{
		ObjectMeta:       metav1.ObjectMeta{Name: name, Namespace: c.Namespace, Labels: map[string]string{labelNode: c.Node}},
		NodeTopology:     &metav1.LabelSelector{MatchLabels: map[string]string{TopologyKey: c.Node}},
		StorageClassName: class.Name,
		Capacity:         resource.NewQuantity(resp.GetAvailableCapacity(), resource.BinarySI),
	}
	if c.Owner != nil {
		obj.OwnerReferences = []metav1.OwnerReference{*c.Owner}
	}
	if m := resp.GetMaximumVolumeSize(); m != nil {
		obj.MaximumVolumeSize = resource.NewQuantity(m.GetValue(), resource.BinarySI)
	}
	api := c.Client.StorageV1().CSIStorageCapacities(c.Namespace)
	cur, err := api.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = api.Create(ctx, obj, metav1.CreateOptions{})
	case err == nil && !sameCapacity(cur, obj):
		obj.ResourceVersion = cur.ResourceVersion
		_, err = api.Update(ctx, obj, metav1.UpdateOptions{})
	}
	return err
}

// sameCapacity says whether an update would change nothing.
func sameCapacity(a, b *storagev1.CSIStorageCapacity) bool {
	sameOwner := len(a.OwnerReferences) == len(b.OwnerReferences) &&
		(len(a.OwnerReferences) == 0 || a.OwnerReferences[0].UID == b.OwnerReferences[0].UID)
	return sameOwner && a.StorageClassName == b.StorageClassName && a.Capacity != nil && a.Capacity.Cmp(*b.Capacity) == 0 &&
		(a.MaximumVolumeSize == nil) == (b.MaximumVolumeSize == nil) &&
		(a.MaximumVolumeSize == nil || a.MaximumVolumeSize.Cmp(*b.MaximumVolumeSize) == 0)
}

// removeStale deletes this node's objects that no class needs any more.
func (c *Capacity) removeStale(ctx context.Context, want map[string]bool) error {
	api := c.Client.StorageV1().CSIStorageCapacities(c.Namespace)
	list, err := api.List(ctx, metav1.ListOptions{LabelSelector: labelNode + "=" + c.Node})
	if err != nil {
		return err
	}
	var errs []error
	for _, o := range list.Items {
		if !want[o.Name] {
			if err := api.Delete(ctx, o.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
