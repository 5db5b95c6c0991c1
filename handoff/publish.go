package handoff

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/dindstore/dindstore/volumes"
)

// Publish is a payload that binds the lease's mount at Target — a CSI
// NodePublishVolume's target path — and keeps it there until Until is
// closed (NodeUnpublishVolume), or a signal or Kill ends it. The bind is
// unmounted before the payload ends, so the release that follows finds
// only the cache's own mount. Target may exist (an empty directory) or be
// made; its parent must exist; it is left in place (the caller removes it).
type Publish struct {
	// Target is where the mount is bound.
	Target string
	// Until ends the publication when closed (nil: only a signal or Kill).
	Until <-chan struct{}
	// Bound says the mount is bound at Target already: a publication taken
	// over after the process that made it restarted (cache.Root.Adopt).
	Bound bool
	Func
}

// Start binds the mount at Target; the publication then lasts until Until
// is closed or the context is cancelled (Signal, Kill), and unbinds.
func (p *Publish) Start(ctx context.Context, l Lease) error {
	if !p.Bound {
		if err := p.bind(l); err != nil {
			return err
		}
	}
	p.Run = func(ctx context.Context, _ Lease) error {
		select {
		case <-p.Until:
		case <-ctx.Done():
		}
		return volumes.UnmountBind(p.Target)
	}
	return p.Func.Start(ctx, l)
}

// bind binds the lease's mount at Target, making Target when missing.
func (p *Publish) bind(l Lease) error {
	err := os.Mkdir(p.Target, 0o750)
	if err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("publish %s: %w", l.Key(), err)
	}
	made := err == nil
	if _, err := volumes.Bind(l.MountPath(), p.Target); err != nil {
		if made {
			err = errors.Join(err, os.Remove(p.Target))
		}
		return fmt.Errorf("publish %s: %w", l.Key(), err)
	}
	return nil
}

// Status is 0; the error is the bind's unmount's, if it failed (the
// target still in use).
func (p *Publish) Status() (int, error) { return 0, p.result() }
