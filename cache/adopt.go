package cache

import (
	"context"
	"errors"
	"fmt"

	"github.com/dindstore/dindstore/proctree"
	"github.com/dindstore/dindstore/volumes"
)

// ErrNotAdoptable means Adopt found no lease to take over: the cache is
// not mounted, or its last holder is alive, left no record, or held it in
// another mode.
var ErrNotAdoptable = errors.New("no dead lease to adopt")

// Adopt takes over the lease of a holder that died while its cache stayed
// in use on purpose — a CSI plugin restarted while pods still use the
// volumes it published. Where Acquire would clear what the dead holder
// left, Adopt keeps the mount as it is and makes this process its owner
// (in the same mode, with command); the lease then ends like any other.
// Only a dead holder's lease held in mode is adopted (ErrNotAdoptable);
// ErrLocked when a live process holds the cache. On failure the dead
// holder's record is left for recover.
func (r *Root) Adopt(ctx context.Context, key, mode string, command []string) (*Lease, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	rec, err := r.readRecord(key)
	if err != nil {
		return nil, err
	}
	l, err := r.waitLock(ctx, key, false)
	if err != nil {
		return nil, err
	}
	lease := &Lease{root: r, lock: l, record: rec, driver: rec.StorageDriver}
	if err := lease.adopt(ctx, mode, command); err != nil {
		return nil, errors.Join(fmt.Errorf("adopt cache %q: %w", key, err), l.release())
	}
	return lease, nil
}

// adopt checks the dead lease and takes it over, under the lock.
func (l *Lease) adopt(ctx context.Context, mode string, command []string) error {
	r, key := l.root, l.record.Key
	old, err := r.readOwner(key)
	switch {
	case err != nil:
		return fmt.Errorf("%w: %w", ErrNotAdoptable, err)
	case old.Alive() || old.Mode != mode:
		return fmt.Errorf("%w: its record names pid %d in mode %q", ErrNotAdoptable, old.PID, old.Mode)
	}
	target := r.MountPath(key)
	if mounted, err := volumes.IsMounted(target); err != nil || !mounted {
		return fmt.Errorf("%w: %s is not mounted", ErrNotAdoptable, target)
	}
	if l.record.Kind == volumes.Loop {
		if l.image, err = r.holdImage(key); err != nil {
			return err
		}
	}
	if err := l.adoptMount(ctx, old, target, mode, command); err != nil {
		l.closeImage()
		return err
	}
	return nil
}

// adoptMount takes the dead holder's mount and its record over.
func (l *Lease) adoptMount(ctx context.Context, old *Owner, target, mode string, command []string) error {
	r, key := l.root, l.record.Key
	l.stale, l.mount = old, &volumes.Mounted{Target: target}
	if devs, err := volumes.ImageDevices(r.imagePath(key)); err == nil && len(devs) == 1 {
		l.mount.Device = devs[0].Path // for Health
	}
	if err := l.mount.Watch(); err != nil {
		return err
	}
	if err := l.own(mode, command); err != nil {
		l.mount.CloseWatch()
		return errors.Join(err, r.writeOwner(key, old))
	}
	if old.Group != "" { // the dead holder's (empty) group: its payload ran in this process
		if g, err := proctree.Open(old.Group); err == nil && g != nil {
			_, _ = endProcesses(ctx, g)
		}
	}
	return nil
}
