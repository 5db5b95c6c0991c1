package cache

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/dindstore/dindstore/internal/testutil"
	"github.com/dindstore/dindstore/volumes"
)

// TestBusyStepsAreWaitedFor: a use of a key meets its lock held by a busy
// step (here: in this process, as a CSI plugin would run one) and waits for
// it instead of failing; a lease held in this process is not mistaken for
// one (recover reports it in use at once, a second use fails at once).
func TestBusyStepsAreWaitedFor(t *testing.T) {
	testutil.RequiresRoot(t)
	ctx := context.Background()
	r := rootWith(t, "k", Spec{Kind: volumes.Dir})
	busy, err := r.lockBusy(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	go func() { time.Sleep(200 * time.Millisecond); _ = busy.release() }()
	start := time.Now()
	l := acquire(t, r, "k") // waits for the busy step
	if waited := time.Since(start); waited < 150*time.Millisecond {
		t.Fatalf("the lease did not wait for the busy step (%s)", waited)
	}
	start = time.Now()
	f := r.recoverKey(ctx, "k", false)
	if len(f) != 1 || f[0].What != FindInUse {
		t.Fatalf("recover of a key this process leases: %+v", f)
	}
	if _, err := r.Acquire(ctx, "k", ModeRun, nil, AcquireOptions{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("a second lease: %v, want ErrLocked", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("meeting this process's own lease took %s: it was taken for a busy step", d)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestRecoverRemovesDeadBusyMarkers: a busy marker whose process is gone
// (killed mid-step) is removed by recover; a live one is kept.
func TestRecoverRemovesDeadBusyMarkers(t *testing.T) {
	r := newRoot(t)
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead, live := r.busyPath("k", cmd.Process.Pid), r.busyPath("k", os.Getpid())
	for _, p := range []string{dead, live} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r.recoverTemp(false)
	if exists(dead) || !exists(live) {
		t.Fatalf("after recover: dead marker there %v, live marker there %v", exists(dead), exists(live))
	}
}
