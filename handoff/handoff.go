package handoff

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Lease is what a payload is handed: a held, mounted cache (a *cache.Lease
// in production).
type Lease interface {
	Key() string
	MountPath() string
	Release(ctx context.Context) error
}

// Payload is what runs on a lease.
type Payload interface {
	// Start starts the payload on the lease; on error nothing of it runs.
	Start(ctx context.Context, l Lease) error
	// Signal passes a signal on to the payload.
	Signal(sig os.Signal) error
	// Kill ends the payload and everything it started, at once.
	Kill() error
	// Done is closed once the payload has ended.
	Done() <-chan struct{}
	// Status is how the payload ended (0: success; 128+N: killed by
	// signal N), valid after Done.
	Status() (int, error)
}

// Options tune Hand.
type Options struct {
	// CatchSignals makes Hand catch the process's DefaultSignals, from
	// before the lease is acquired (one that arrives while the cache is
	// being mounted ends in a clean release) until it is released, and
	// pass them on to the payload. A caller that serves many leases in one
	// process (the CSI plugin) leaves it off and ends payloads itself.
	CatchSignals bool
	// Signals, without CatchSignals, are signals of the caller's own to
	// pass on (a test's, an embedder's). SIGTERM and SIGINT also start the
	// stop timeout.
	Signals <-chan os.Signal
	// StopTimeout is how long the payload may take to stop after SIGTERM
	// or SIGINT before it is killed (DefaultStopTimeout when 0).
	StopTimeout time.Duration
	// Started, when set, runs once the payload started (to report it).
	Started func(Lease)
}

// DefaultSignals are the signals CatchSignals catches: the ways a user, a
// runner or an init system asks a job to end or to reload.
var DefaultSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT}

// DefaultStopTimeout is docker stop's grace period.
const DefaultStopTimeout = 10 * time.Second

// NotStarted is the status Hand returns when the payload never ran.
const NotStarted = -1

// ErrNotStarted marks a payload that could not be started, or a signal
// that came before it was.
var ErrNotStarted = errors.New("payload not started")

// Hand acquires a lease, runs the payload on it while passing signals on,
// and releases the lease on every path. It returns the payload's status
// and the error of a step that failed (acquire, start, release; joined when
// several did). A failed release turns a success into an error; the status
// is then still the payload's.
func Hand(ctx context.Context, acquire func(context.Context) (Lease, error), p Payload, o Options) (int, error) {
	if o.CatchSignals {
		stop := catchSignals(&o)
		defer stop()
	}
	l, err := acquire(ctx)
	if err != nil {
		return NotStarted, err
	}
	status, err := run(ctx, l, p, o)
	// The release runs even when ctx was cancelled: it is the cleanup.
	if rerr := l.Release(context.WithoutCancel(ctx)); rerr != nil {
		err = errors.Join(err, rerr)
	}
	return status, err
}

// run starts the payload and supervises it to its end.
func run(ctx context.Context, l Lease, p Payload, o Options) (int, error) {
	select {
	case s := <-o.Signals:
		return 128 + signum(s), fmt.Errorf("%w: got %v before it started", ErrNotStarted, s)
	default:
	}
	if err := p.Start(ctx, l); err != nil {
		return NotStarted, fmt.Errorf("%w: %w", ErrNotStarted, err)
	}
	if o.Started != nil {
		o.Started(l)
	}
	return supervise(ctx, p, o)
}

// supervise passes signals on until the payload ends. SIGTERM or SIGINT
// starts the stop timeout, after which the payload is killed; its status
// is then 128+the signal that asked it to stop. A cancelled ctx stops it
// like SIGTERM.
func supervise(ctx context.Context, p Payload, o Options) (int, error) {
	timeout := o.StopTimeout
	if timeout <= 0 {
		timeout = DefaultStopTimeout
	}
	var stopping os.Signal
	var deadline <-chan time.Time
	done := ctx.Done()
	for {
		select {
		case s := <-o.Signals:
			_ = p.Signal(s)
			if stopping == nil && (s == syscall.SIGTERM || s == syscall.SIGINT) {
				stopping, deadline = s, time.After(timeout)
			}
		case <-done:
			done = nil
			_ = p.Signal(syscall.SIGTERM)
			if stopping == nil {
				stopping, deadline = syscall.SIGTERM, time.After(timeout)
			}
		case <-deadline:
			fmt.Fprintf(os.Stderr, "dindstore: the payload did not stop within %s of %v: killing its whole tree\n",
				timeout, stopping)
			_ = p.Kill()
		case <-p.Done():
			status, err := p.Status()
			if stopping != nil && status == 128+int(syscall.SIGKILL) {
				status = 128 + signum(stopping)
			}
			return status, err
		}
	}
}

func signum(s os.Signal) int {
	if n, ok := s.(syscall.Signal); ok {
		return int(n)
	}
	return int(syscall.SIGTERM)
}

// catchSignals makes the process's DefaultSignals o.Signals; stop undoes
// it.
func catchSignals(o *Options) (stop func()) {
	caught := make(chan os.Signal, 4)
	signal.Notify(caught, DefaultSignals...)
	o.Signals = caught
	return func() { signal.Stop(caught) }
}
