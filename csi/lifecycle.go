package csi

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/dindstore/dindstore/cache"
	"github.com/dindstore/dindstore/volumes"
)

// Start takes over what an earlier run of the plugin left (see Collect)
// and marks the plugin ready (Probe).
func (d *Driver) Start(ctx context.Context) error {
	err := errors.Join(d.pinAll(), d.Collect(ctx))
	d.mu.Lock()
	d.ready = true
	d.mu.Unlock()
	return err
}

// pinAll pins the provisioned volumes and snapshots an earlier version
// of the plugin made without a pin, so that prune passes them too.
func (d *Driver) pinAll() error {
	keys, err := d.root.Keys()
	if err != nil {
		return fmt.Errorf("pin the provisioned volumes: %w", err)
	}
	var errs []error
	for _, key := range keys {
		what := "volume"
		if isSnapshot(key) {
			what = "snapshot"
		} else if !isProvisioned(key) {
			continue
		}
		if rec, err := d.root.Record(key); err == nil {
			_, err = d.pinned(rec, what, key)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Collect is the plugin's garbage collection, at start and periodically:
// a recorded publication this process does not hold is taken over when
// its target is still mounted (the plugin restarted under a running pod),
// and cleaned up when it is not (its pod is gone: the kubelet restarted,
// the node rebooted; removing a pod's own cache clears what its dead lease
// left); then gc, which runs recover first, goes over the root. A volume
// still published is never touched: its lease is held, which recover and
// gc leave alone.
func (d *Driver) Collect(ctx context.Context) error {
	pubs, errs := d.store.load(ctx)
	var orphans []*publication
	for _, p := range pubs {
		end, err := d.begin(p.VolumeID)
		if err != nil {
			continue // a call on it is in progress
		}
		if d.lookup(p.VolumeID) == nil {
			if orphan, err := d.takeOver(p); err != nil {
				errs = append(errs, err)
			} else if orphan {
				orphans = append(orphans, p)
			}
		}
		end()
	}
	for _, p := range orphans {
		errs = append(errs, d.collectOrphan(ctx, p))
	}
	errs = append(errs, d.gc(ctx))
	return errors.Join(errs...)
}

// gc runs `dindstore gc` over the root (recover first, then its own
// steps) and logs what it found and did.
func (d *Driver) gc(ctx context.Context) error {
	findings, err := d.root.GC(ctx, false)
	for _, f := range findings {
		log.Print("gc: " + f.String())
	}
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	return nil
}

// takeOver adopts a publication whose target is still bound; orphan says
// its target is not, and it is to be cleaned up.
func (d *Driver) takeOver(p *publication) (orphan bool, err error) {
	mounted, err := volumes.IsMounted(p.Target)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("publication of volume %s: %w", p.VolumeID, err)
	}
	if !mounted {
		return true, nil
	}
	if err := d.start(p, true); err != nil {
		return false, fmt.Errorf("take over volume %s at %s: %w", p.VolumeID, p.Target, err)
	}
	log.Printf("took over volume %s (cache %s) at %s, published for pod %s", p.VolumeID, p.Key, p.Target, p.Pod)
	return false, nil
}

// collectOrphan cleans up a publication whose pod is gone.
func (d *Driver) collectOrphan(ctx context.Context, p *publication) error {
	end, err := d.begin(p.VolumeID)
	if err != nil {
		return nil // published again meanwhile
	}
	defer end()
	if d.lookup(p.VolumeID) != nil {
		return nil
	}
	if err := d.forget(ctx, p); err != nil {
		return fmt.Errorf("clean up volume %s (cache %s) of gone pod %s: %w", p.VolumeID, p.Key, p.Pod, err)
	}
	log.Printf("cleaned up volume %s (cache %s) of pod %s, which is gone", p.VolumeID, p.Key, p.Pod)
	return nil
}

// Run collects every interval until ctx ends, logging what failed.
func (d *Driver) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := d.Collect(ctx); err != nil {
				log.Printf("garbage collection: %v", err)
			}
		}
	}
}

// removeTarget removes a target directory the plugin made, unless
// something is mounted on it.
func removeTarget(path string) error {
	if mounted, err := volumes.IsMounted(path); err == nil && mounted {
		return fmt.Errorf("%w: %s is still mounted", cache.ErrInUse, path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove target %s: %w", path, err)
	}
	return nil
}
