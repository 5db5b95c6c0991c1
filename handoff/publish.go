package handoff

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

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
	stop  chan struct{}
	once  sync.Once
	ending
}

// Start binds the mount at Target.
func (p *Publish) Start(_ context.Context, l Lease) error {
	if err := os.Mkdir(p.Target, 0o750); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("publish %s: %w", l.Key(), err)
	}
	if _, err := volumes.Bind(l.MountPath(), p.Target); err != nil {
		return fmt.Errorf("publish %s: %w", l.Key(), err)
	}
	p.init()
	p.stop = make(chan struct{})
	go func() {
		select {
		case <-p.Until:
		case <-p.stop:
		}
		p.end(volumes.UnmountBind(p.Target))
	}()
	return nil
}

// Signal ends the publication.
func (p *Publish) Signal(os.Signal) error { return p.Kill() }

// Kill ends the publication (its bind is unmounted first).
func (p *Publish) Kill() error {
	p.once.Do(func() { close(p.stop) })
	return nil
}

// Done is closed once the bind is unmounted (or could not be: see Status).
func (p *Publish) Done() <-chan struct{} { return p.done }

// Status is 0; the error is the bind's unmount's, if it failed (the
// target still in use).
func (p *Publish) Status() (int, error) { return 0, p.result() }
