package handoff

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/dindstore/dindstore/launch"
	"github.com/docker/docker/client"
)

// ending closes a done channel once, with the error of the way it ended.
type ending struct {
	once sync.Once
	done chan struct{}
	mu   sync.Mutex
	err  error
}

func (e *ending) init() { e.done = make(chan struct{}) }

func (e *ending) end(err error) {
	e.once.Do(func() {
		e.mu.Lock()
		e.err = err
		e.mu.Unlock()
		close(e.done)
	})
}

func (e *ending) result() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

// Hold is a payload that runs nothing: the lease is held for someone else
// (a runner's job, `dindstore prepare`) until a signal (`dindstore release`
// sends SIGTERM) or until Until is closed (a watched process ended).
type Hold struct {
	// Until ends the hold when closed (nil: never).
	Until <-chan struct{}
	// Why is set to what ended the hold.
	Why string
	ending
}

// Start begins the hold.
func (h *Hold) Start(context.Context, Lease) error {
	h.init()
	go func() {
		select {
		case <-h.Until:
			h.Why = "the watched process ended"
			h.end(nil)
		case <-h.done:
		}
	}()
	return nil
}

// Signal ends the hold.
func (h *Hold) Signal(s os.Signal) error {
	h.once.Do(func() { h.Why = s.String(); close(h.done) })
	return nil
}

// Kill ends the hold.
func (h *Hold) Kill() error { h.end(nil); return nil }

// Done is closed when the hold ends.
func (h *Hold) Done() <-chan struct{} { return h.done }

// Status is 0: a hold always ends well.
func (h *Hold) Status() (int, error) { return 0, h.result() }

// Container is a payload that runs a dind container on the mount through
// the Docker Engine API (`dindstore launch`): it ends when the container
// ends, and any signal, a closed Until or Kill stops it.
type Container struct {
	// Spec describes the dind container; Start pins it to the lease's
	// cache (see PinContainer) and labels it with the key and RootPath.
	Spec launch.Spec
	// RootPath is the root of the lease's cache, for the container's label.
	RootPath string
	// Owner, when set, becomes the owner of the mount's root directory
	// (a rootless daemon's user).
	Owner *Owner
	// ReadyTimeout, when set, makes Start wait until the inner daemon
	// answers (and stop the container if it does not).
	ReadyTimeout time.Duration
	// Until stops the container when closed (nil: never).
	Until <-chan struct{}
	// Ctr is the started container.
	Ctr *launch.Container
	ending
}

// Start starts the container, waiting for its daemon when asked to.
func (c *Container) Start(ctx context.Context, l Lease) error {
	ctr, err := c.begin(ctx, l)
	if err != nil {
		return err
	}
	if c.ReadyTimeout > 0 {
		if err := ctr.WaitReady(ctx, c.ReadyTimeout); err != nil {
			return errors.Join(err, ctr.Stop(context.WithoutCancel(ctx)))
		}
	}
	c.Ctr = ctr
	c.init()
	ended := ctr.Wait(context.Background())
	go func() {
		select {
		case <-ended:
			c.end(ctr.Stop(context.Background())) // removes it
		case <-c.Until:
			_ = c.Kill()
		}
	}()
	return nil
}

// Signal stops the container (docker stop's grace period applies).
func (c *Container) Signal(os.Signal) error { return c.Kill() }

// Kill stops the container and ends the payload once it is stopped.
func (c *Container) Kill() error {
	go func() { c.end(c.Ctr.Stop(context.Background())) }()
	return nil
}

// Done is closed when the container has ended and is removed.
func (c *Container) Done() <-chan struct{} { return c.done }

// Status is 0 once the container ended; the error is its stop's.
func (c *Container) Status() (int, error) { return 0, c.result() }

// Func is a payload that runs a function on the lease (`dindstore warm`:
// start an inner daemon, fill the cache, stop it). A signal or Kill
// cancels the function's context; it ends when the function returns.
type Func struct {
	// Run does the work; its error is the payload's.
	Run    func(ctx context.Context, l Lease) error
	cancel context.CancelFunc
	ending
}

// Start runs the function in the background.
func (f *Func) Start(ctx context.Context, l Lease) error {
	f.init()
	ctx, f.cancel = context.WithCancel(ctx)
	go func() { f.end(f.Run(ctx, l)) }()
	return nil
}

// Signal cancels the function's context.
func (f *Func) Signal(os.Signal) error { f.cancel(); return nil }

// Kill cancels the function's context.
func (f *Func) Kill() error { f.cancel(); return nil }

// Done is closed when the function has returned.
func (f *Func) Done() <-chan struct{} { return f.done }

// Status is 0 when the function succeeded, 1 with its error otherwise.
func (f *Func) Status() (int, error) {
	if err := f.result(); err != nil {
		return 1, err
	}
	return 0, nil
}

// Daemon is a payload that runs an inner dockerd on the lease, pinned like
// a run's (see PinCommand), hands its API client to Fill, and stops it
// (`dindstore warm`: fill a cache with images). A signal or Kill cancels
// Fill's context.
type Daemon struct {
	// Flags are dockerd's own (--registry-mirror, ...).
	Flags []string
	// Log takes the daemon's output.
	Log *os.File
	// StartTimeout bounds the wait until the daemon answers.
	StartTimeout time.Duration
	// Starting, when set, is called as the daemon starts; the function it
	// returns is told how the start went (progress).
	Starting func() func(error)
	// Fill does the work with the running daemon.
	Fill func(ctx context.Context, api *client.Client) error
	Func
}

// Start starts the daemon's work in the background.
func (d *Daemon) Start(ctx context.Context, l Lease) error {
	d.Run = d.run
	return d.Func.Start(ctx, l)
}

// filling is a lease that records a fill in progress (cache.Lease): a
// warm that does not complete leaves its cache marked incomplete, never
// served as warm.
type filling interface {
	MarkIncomplete(reason string) error
	MarkComplete() error
}

func (d *Daemon) run(ctx context.Context, l Lease) error {
	argv, _, err := PinCommand(l, append([]string{"dockerd"}, d.Flags...), os.Environ())
	if err != nil {
		return err
	}
	f, marks := l.(filling)
	if marks {
		reason := fmt.Sprintf("a warm by pid %d, started %s, did not finish; warm it again",
			os.Getpid(), time.Now().UTC().Format(time.RFC3339))
		if err := f.MarkIncomplete(reason); err != nil {
			return err
		}
	}
	if err := d.fill(ctx, l, argv[1:]); err != nil {
		return err
	}
	if marks {
		return f.MarkComplete()
	}
	return nil
}

// fill starts the daemon, fills the cache through it and stops it cleanly.
func (d *Daemon) fill(ctx context.Context, l Lease, flags []string) (err error) {
	started := func(error) {}
	if d.Starting != nil {
		started = d.Starting()
	}
	cfg := launch.DaemonConfig{DataRoot: l.MountPath(), Flags: flags, Log: d.Log, Timeout: d.StartTimeout}
	if g := leaseGroup(l); g != nil {
		// In the lease's group: a holder killed takes the daemon's whole
		// tree with it (its guard ends the group).
		if cfg.Cgroup, err = g.Dir(); err != nil {
			return err
		}
		defer cfg.Cgroup.Close()
	}
	dmn, err := launch.StartDaemonWith(ctx, cfg)
	started(err)
	if err != nil {
		return fmt.Errorf("inner dockerd on %q: %w", l.Key(), err)
	}
	defer func() { err = errors.Join(err, dmn.Stop()) }()
	return d.Fill(ctx, dmn.Client)
}
