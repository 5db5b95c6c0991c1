package csi

import (
	"context"
	"errors"
	"fmt"
	"log"
	"path/filepath"
	"strings"
	"time"

	csi "github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/dindstore/dindstore/cache"
	"github.com/dindstore/dindstore/handoff"
	"github.com/dindstore/dindstore/volumes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// NodePublishVolume makes the volume's cache (a fresh one, a clone of a
// warm key, or the namespace's cacheKey), takes its lease and binds it at
// the target path. Publishing again at the same target succeeds; at
// another target it fails (FAILED_PRECONDITION: a volume is one pod's).
func (d *Driver) NodePublishVolume(ctx context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	r, err := d.checkPublish(req)
	if err != nil {
		return nil, err
	}
	end, err := d.begin(req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	defer end()
	if p := d.lookup(req.GetVolumeId()); p != nil {
		return &csi.NodePublishVolumeResponse{}, d.republish(p, req.GetTargetPath())
	}
	if err := d.publish(ctx, req.GetVolumeId(), req.GetTargetPath(), r); err != nil {
		return nil, err
	}
	return &csi.NodePublishVolumeResponse{}, nil
}

// republish answers a publication of a volume published already: at the
// same target it is a no-op (binding it again if something unmounted it);
// at another it is refused, a volume being one pod's.
func (d *Driver) republish(p *publication, target string) error {
	if p.Target != target {
		return status.Errorf(codes.FailedPrecondition, "volume %s is published at %s already: "+
			"a dindstore volume serves one pod", p.VolumeID, p.Target)
	}
	if mounted, err := volumes.IsMounted(target); err == nil && !mounted {
		if _, err := volumes.Bind(p.lease.MountPath(), target); err != nil {
			return status.Errorf(codes.Internal, "bind volume %s at %s again: %v", p.VolumeID, target, err)
		}
	}
	return nil
}

// checkPublish validates the request before anything is made.
func (d *Driver) checkPublish(req *csi.NodePublishVolumeRequest) (Request, error) {
	switch {
	case req.GetVolumeId() == "":
		return Request{}, status.Error(codes.InvalidArgument, "volume id missing")
	case req.GetTargetPath() == "":
		return Request{}, status.Error(codes.InvalidArgument, "target path missing")
	case !filepath.IsAbs(req.GetTargetPath()):
		return Request{}, status.Errorf(codes.InvalidArgument, "target path %q is not absolute", req.GetTargetPath())
	case req.GetVolumeCapability() == nil:
		return Request{}, status.Error(codes.InvalidArgument, "volume capability missing")
	case req.GetVolumeCapability().GetMount() == nil:
		return Request{}, status.Error(codes.InvalidArgument, "only mount volumes are served: a block volume cannot hold a Docker data root")
	case req.GetReadonly():
		return Request{}, status.Error(codes.InvalidArgument, "a Docker data root cannot be read-only")
	}
	if err := checkAccessMode(req.GetVolumeCapability().GetAccessMode()); err != nil {
		return Request{}, err
	}
	r, err := ParseAttributes(req.GetVolumeContext(), req.GetVolumeCapability().GetMount().GetFsType(), d.cfg.Limits)
	if err != nil {
		return Request{}, status.Error(codes.InvalidArgument, err.Error())
	}
	if d.cfg.Warming == nil || r.From == "" {
		return r, nil
	}
	if at, warming := d.cfg.Warming(r.From); warming {
		return Request{}, status.Errorf(codes.Unavailable, "warm key %q is not on this node yet (%s): the volume "+
			"waits for it rather than start cold; the kubelet retries", r.From, at)
	}
	return r, nil
}

// checkAccessMode takes single-node modes only: a cache serves one daemon.
func checkAccessMode(m *csi.VolumeCapability_AccessMode) error {
	switch m.GetMode() {
	case csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER,
		csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER,
		csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER:
		return nil
	}
	return status.Errorf(codes.InvalidArgument, "access mode %v: a dindstore volume is one node's, written by one daemon", m.GetMode())
}

// publish records the publication, makes its cache and starts its lease;
// on failure it undoes what it made.
func (d *Driver) publish(ctx context.Context, volumeID, target string, r Request) error {
	p := &publication{VolumeID: volumeID, Target: target, Pod: r.Pod, Own: r.CacheKey == "",
		Commit: r.Commit, Key: volumeKey(volumeID), Published: time.Now().UTC()}
	switch {
	case isProvisioned(volumeID) && !r.Ephemeral: // a persistent volume CreateVolume made
		p.Own, p.Key = false, volumeID
	case !p.Own:
		p.Key = namespacedKey(r.Pod.Namespace, r.CacheKey)
	}
	if err := d.store.save(p); err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	err := d.makeCache(ctx, p, r)
	if err == nil {
		err = d.start(p, false)
	}
	if err != nil {
		if ferr := d.forget(ctx, p); ferr != nil {
			log.Printf("undo the refused publication of volume %s: %v (garbage collection retries)", volumeID, ferr)
		}
		return toStatus(err, p)
	}
	return nil
}

// makeCache makes the publication's cache unless it exists: the volume's
// own (a clone of From, or fresh), or the namespace's cacheKey, whose
// existing kind and filesystem must agree with what the pod set, and which
// grows when the pod asks a larger size (it never shrinks).
func (d *Driver) makeCache(ctx context.Context, p *publication, r Request) error {
	if p.Key == p.VolumeID { // provisioned: it exists, or was deleted
		if !d.root.Exists(p.Key) {
			return errNotProvisioned
		}
		return nil
	}
	if p.Own && r.From != "" {
		_, _, err := d.root.FromWarm(ctx, p.Key, r.From, r.Spec)
		return err
	}
	if p.Own || !d.root.Exists(p.Key) {
		_, _, err := d.root.Create(ctx, p.Key, r.Spec)
		return err
	}
	spec := r.explicit
	spec.Size = 0
	rec, _, err := d.root.Create(ctx, p.Key, spec)
	if err == nil && rec.Kind == volumes.Loop && r.explicit.Size > rec.CapBytes {
		err = d.root.Grow(ctx, p.Key, r.explicit.Size)
	}
	return err
}

// start takes the lease (adopting a dead one when bound) and binds the
// cache at the target; it returns once it is bound, or why it could not.
func (d *Driver) start(p *publication, bound bool) error {
	p.until, p.done = make(chan struct{}), make(chan error, 1)
	started := make(chan struct{})
	opts := d.cfg.Acquire
	opts.Promised = d.promised()
	acquire := handoff.From(d.root, p.Key, cache.ModePublish, p.command(), opts, nil)
	if bound {
		acquire = func(ctx context.Context) (handoff.Lease, error) {
			return d.root.Adopt(ctx, p.Key, cache.ModePublish, p.command())
		}
	}
	payload := &handoff.Publish{Target: p.Target, Until: p.until, Bound: bound}
	go func() {
		_, err := handoff.Hand(context.Background(), acquire, payload,
			handoff.Options{Started: func(l handoff.Lease) { p.lease = l; close(started) }})
		p.done <- err
	}()
	select {
	case <-started:
		d.setPub(p)
		return nil
	case err := <-p.done:
		return err
	}
}

// NodeUnpublishVolume unbinds the target, releases the lease, removes the
// volume's own cache (or commits a clone when asked) and the target.
// Unpublishing a volume that is not published succeeds.
func (d *Driver) NodeUnpublishVolume(ctx context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	switch {
	case req.GetVolumeId() == "":
		return nil, status.Error(codes.InvalidArgument, "volume id missing")
	case req.GetTargetPath() == "":
		return nil, status.Error(codes.InvalidArgument, "target path missing")
	}
	end, err := d.begin(req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	defer end()
	p := d.lookup(req.GetVolumeId())
	if p == nil || p.Target != req.GetTargetPath() {
		return d.unpublishUnheld(ctx, req.GetVolumeId(), req.GetTargetPath())
	}
	if err := d.unpublish(ctx, p); err != nil {
		return nil, status.Errorf(codes.Internal, "unpublish volume %s: %v", p.VolumeID, err)
	}
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

// unpublishUnheld answers an unpublish of a volume this process holds no
// lease of at target: nothing to do, the rest of an earlier unpublish
// whose release failed (its record is still there: remove what it made),
// or a publication still bound that start-up could not take over (taken
// over now, then unpublished).
func (d *Driver) unpublishUnheld(ctx context.Context, volumeID, target string) (*csi.NodeUnpublishVolumeResponse, error) {
	if p, err := d.store.get(volumeID); err == nil && p != nil && p.Target == target {
		orphan, err := d.takeOver(p)
		if err != nil {
			// Not adoptable (its cache's own mount is gone): unbind it all
			// the same, as asked, and clean up behind it.
			log.Printf("unpublish volume %s: %v; unbinding %s without its lease", volumeID, err, target)
			if err := volumes.UnmountBind(target); err != nil {
				return nil, status.Errorf(codes.Internal, "unpublish volume %s: %v", volumeID, err)
			}
			orphan = true
		}
		if !orphan {
			if err := d.unpublish(ctx, p); err != nil {
				return nil, status.Errorf(codes.Internal, "unpublish volume %s: %v", volumeID, err)
			}
			return &csi.NodeUnpublishVolumeResponse{}, nil
		}
		if err := d.forget(ctx, p); err != nil {
			return nil, status.Errorf(codes.Internal, "clean up volume %s: %v", volumeID, err)
		}
	}
	if err := removeTarget(target); err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "volume %s is not published at it: %v", volumeID, err)
	}
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

// unpublish ends the publication's lease, then forgets it. A failed
// release keeps the publication (the kubelet retries).
func (d *Driver) unpublish(ctx context.Context, p *publication) error {
	err := p.end()
	d.dropPub(p.VolumeID)
	if err != nil {
		// The lease ended (released, or marked for recover) but something
		// failed: the kubelet's retry finds its record and cleans up.
		return err
	}
	return d.forget(ctx, p)
}

// commit makes a publication's clone its warm key's next generation, and
// tells Committed. A clone that can never be committed (damaged) is not an
// error: it is dropped rather than retried forever.
func (d *Driver) commit(ctx context.Context, p *publication) error {
	warm := ""
	if rec, err := d.root.Record(p.Key); err == nil {
		warm = rec.Parent
	}
	err := d.root.Promote(ctx, p.Key)
	switch {
	case err == nil && d.cfg.Committed != nil && warm != "":
		d.cfg.Committed(warm)
	case errors.Is(err, cache.ErrDamaged), errors.Is(err, cache.ErrInvalid):
		log.Printf("volume %s: its clone %s is not committed: %v", p.VolumeID, p.Key, err)
		return nil
	}
	return err
}

// forget removes what a publication made once its lease has ended: a
// committed clone becomes its warm key's next generation (unless it is
// damaged), the volume's own cache is removed, then the target and the
// record.
func (d *Driver) forget(ctx context.Context, p *publication) error {
	var err error
	if p.Own && p.Commit {
		err = d.commit(ctx, p)
	}
	if p.Own && err == nil && d.root.Exists(p.Key) {
		err = d.root.Remove(ctx, p.Key)
	}
	if err != nil {
		return err // kept: recorded, for the next garbage collection
	}
	return errors.Join(removeTarget(p.Target), d.store.remove(p.VolumeID))
}

// toStatus maps a publication's failure to the code the kubelet acts on.
func toStatus(err error, p *publication) error {
	var held *cache.HeldError
	switch {
	case errors.As(err, &held):
		return status.Errorf(codes.FailedPrecondition, "cache %s is in use%s: %v", p.Key, holderPod(held), err)
	case errors.Is(err, cache.ErrNoRoom):
		return status.Errorf(codes.ResourceExhausted, "volume %s: %v", p.VolumeID, err)
	case errors.Is(err, errNotProvisioned):
		return status.Errorf(codes.NotFound, "volume %s: %v", p.VolumeID, err)
	case errors.Is(err, cache.ErrInvalid), errors.Is(err, ErrInvalidAttribute):
		return status.Errorf(codes.InvalidArgument, "volume %s: %v", p.VolumeID, err)
	case errors.Is(err, cache.ErrDamaged), errors.Is(err, cache.ErrInUse), errors.Is(err, cache.ErrOwnerMismatch):
		return status.Errorf(codes.FailedPrecondition, "volume %s: %v", p.VolumeID, err)
	}
	return status.Errorf(codes.Internal, "volume %s: %v", p.VolumeID, err)
}

// holderPod names the pod holding a cache, from its owner record.
func holderPod(held *cache.HeldError) string {
	if held.Owner == nil {
		return ""
	}
	for _, arg := range held.Owner.Command {
		if pod, ok := strings.CutPrefix(arg, "pod="); ok {
			return fmt.Sprintf(" by pod %s", pod)
		}
	}
	return ""
}
