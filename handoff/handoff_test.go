package handoff

import (
	"context"
	"errors"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeLease counts its releases and may fail them.
type fakeLease struct {
	released int
	err      error
}

func (l *fakeLease) Key() string                   { return "k" }
func (l *fakeLease) MountPath() string             { return "/m" }
func (l *fakeLease) Release(context.Context) error { l.released++; return l.err }

// fakePayload records what it was told; it ends with status on Kill, on a
// signal in endOn, or when end is called.
type fakePayload struct {
	mu       sync.Mutex
	startErr error
	endOn    map[os.Signal]int
	signals  []os.Signal
	killed   bool
	done     chan struct{}
	status   int
	once     sync.Once
}

func newFake() *fakePayload {
	return &fakePayload{done: make(chan struct{}), endOn: map[os.Signal]int{}}
}

func (p *fakePayload) Start(context.Context, Lease) error { return p.startErr }
func (p *fakePayload) Signal(s os.Signal) error {
	p.mu.Lock()
	p.signals = append(p.signals, s)
	st, ok := p.endOn[s]
	p.mu.Unlock()
	if ok {
		p.end(st)
	}
	return nil
}
func (p *fakePayload) Kill() error {
	p.mu.Lock()
	p.killed = true
	p.mu.Unlock()
	p.end(128 + int(syscall.SIGKILL))
	return nil
}
func (p *fakePayload) end(status int) {
	p.once.Do(func() { p.mu.Lock(); p.status = status; p.mu.Unlock(); close(p.done) })
}
func (p *fakePayload) Done() <-chan struct{} { return p.done }
func (p *fakePayload) Status() (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status, nil
}

func acquireOf(l *fakeLease, err error) func(context.Context) (Lease, error) {
	return func(context.Context) (Lease, error) {
		if err != nil {
			return nil, err
		}
		return l, nil
	}
}

func TestHandSuccessAndStatus(t *testing.T) {
	for _, want := range []int{0, 3} {
		l, p := &fakeLease{}, newFake()
		p.end(want)
		status, err := Hand(context.Background(), acquireOf(l, nil), p, Options{})
		if status != want || err != nil || l.released != 1 {
			t.Errorf("status %d, err %v, released %d; want %d, nil, 1", status, err, l.released, want)
		}
	}
}

func TestHandAcquireFails(t *testing.T) {
	boom := errors.New("locked")
	status, err := Hand(context.Background(), acquireOf(nil, boom), newFake(), Options{})
	if status != NotStarted || !errors.Is(err, boom) {
		t.Errorf("status %d, err %v", status, err)
	}
}

func TestHandStartFailsReleases(t *testing.T) {
	l, p := &fakeLease{}, newFake()
	p.startErr = errors.New("no such file")
	status, err := Hand(context.Background(), acquireOf(l, nil), p, Options{})
	if status != NotStarted || !errors.Is(err, ErrNotStarted) || l.released != 1 {
		t.Errorf("status %d, err %v, released %d", status, err, l.released)
	}
}

func TestHandSignalBeforeStart(t *testing.T) {
	l, p := &fakeLease{}, newFake()
	sigs := make(chan os.Signal, 1)
	sigs <- syscall.SIGTERM
	status, err := Hand(context.Background(), acquireOf(l, nil), p, Options{Signals: sigs})
	if status != 143 || !errors.Is(err, ErrNotStarted) || l.released != 1 {
		t.Errorf("status %d, err %v, released %d", status, err, l.released)
	}
}

func TestHandPassesSignals(t *testing.T) {
	l, p := &fakeLease{}, newFake()
	p.endOn[syscall.SIGTERM] = 143
	sigs := make(chan os.Signal, 2)
	started := func(Lease) {
		sigs <- syscall.SIGHUP
		go func() { time.Sleep(20 * time.Millisecond); sigs <- syscall.SIGTERM }()
	}
	status, err := Hand(context.Background(), acquireOf(l, nil), p,
		Options{Signals: sigs, StopTimeout: time.Minute, Started: started})
	if status != 143 || err != nil || p.killed || len(p.signals) != 2 || p.signals[0] != syscall.SIGHUP {
		t.Errorf("status %d, err %v, killed %v, signals %v", status, err, p.killed, p.signals)
	}
}

func TestHandEscalates(t *testing.T) {
	l, p := &fakeLease{}, newFake() // ignores SIGTERM
	sigs := make(chan os.Signal, 1)
	sigs <- syscall.SIGINT
	start := time.Now()
	status, err := handStarted(t, l, p, Options{Signals: sigs, StopTimeout: 50 * time.Millisecond})
	if status != 130 || err != nil || !p.killed || l.released != 1 {
		t.Errorf("status %d, err %v, killed %v, released %d; want 130 (128+SIGINT), killed, released", status, err,
			p.killed, l.released)
	}
	if time.Since(start) < 50*time.Millisecond {
		t.Error("killed before the stop timeout")
	}
}

// handStarted is Hand with the signal sent only once the payload runs.
func handStarted(t *testing.T, l *fakeLease, p *fakePayload, o Options) (int, error) {
	t.Helper()
	queued := o.Signals
	own := make(chan os.Signal, 1)
	o.Signals = own
	o.Started = func(Lease) { own <- <-queued }
	return Hand(context.Background(), acquireOf(l, nil), p, o)
}

func TestHandContextCancelStops(t *testing.T) {
	l, p := &fakeLease{}, newFake()
	p.endOn[syscall.SIGTERM] = 143
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	status, err := Hand(ctx, acquireOf(l, nil), p, Options{})
	if status != 143 || err != nil || l.released != 1 {
		t.Errorf("status %d, err %v, released %d", status, err, l.released)
	}
}

func TestHandReleaseErrorNeverSucceeds(t *testing.T) {
	damaged := errors.New("filesystem damaged")
	l, p := &fakeLease{err: damaged}, newFake()
	p.end(0)
	status, err := Hand(context.Background(), acquireOf(l, nil), p, Options{})
	if status != 0 || !errors.Is(err, damaged) {
		t.Errorf("status %d, err %v; want 0 with the release's error", status, err)
	}
}

func TestFuncPayload(t *testing.T) {
	boom := errors.New("pull failed")
	l := &fakeLease{}
	status, err := Hand(context.Background(), acquireOf(l, nil),
		&Func{Run: func(context.Context, Lease) error { return boom }}, Options{})
	if status != 1 || !errors.Is(err, boom) || l.released != 1 {
		t.Errorf("status %d, err %v, released %d", status, err, l.released)
	}
	sigs := make(chan os.Signal, 1)
	f := &Func{Run: func(ctx context.Context, _ Lease) error { <-ctx.Done(); return ctx.Err() }}
	status, err = Hand(context.Background(), acquireOf(&fakeLease{}, nil), f,
		Options{Signals: sigs, Started: func(Lease) { sigs <- syscall.SIGINT }})
	if status != 1 || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Func: status %d, err %v", status, err)
	}
}

func TestHoldPayload(t *testing.T) {
	until := make(chan struct{})
	h := &Hold{Until: until}
	go func() { time.Sleep(10 * time.Millisecond); close(until) }()
	status, err := Hand(context.Background(), acquireOf(&fakeLease{}, nil), h, Options{})
	if status != 0 || err != nil || h.Why != "the watched process ended" {
		t.Errorf("status %d, err %v, why %q", status, err, h.Why)
	}
}

// TestHandCatchesProcessSignals: with CatchSignals, a signal sent to the
// process reaches the payload (a HUP, which the fake turns into its end).
func TestHandCatchesProcessSignals(t *testing.T) {
	l, p := &fakeLease{}, newFake()
	p.endOn[syscall.SIGHUP] = 0
	started := func(Lease) { _ = syscall.Kill(os.Getpid(), syscall.SIGHUP) }
	status, err := Hand(context.Background(), acquireOf(l, nil), p, Options{CatchSignals: true, Started: started})
	if status != 0 || err != nil || len(p.signals) != 1 || p.signals[0] != syscall.SIGHUP || l.released != 1 {
		t.Errorf("status %d, err %v, signals %v, released %d", status, err, p.signals, l.released)
	}
}
