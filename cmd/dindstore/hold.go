package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/dindstore/dindstore/cache"
	"github.com/urfave/cli/v2"
)

// holdCommand is the detached holder that prepare (and launch --detach)
// start: it takes the lease, reports on fd 3, and keeps the lease until
// SIGTERM (release), or the watched process ends.
var holdCommand = &cli.Command{
	Name:      "hold",
	Hidden:    true,
	ArgsUsage: "KEY",
	Flags: append([]cli.Flag{
		&cli.StringFlag{Name: "mode", Value: cache.ModePrepare},
		&cli.IntFlag{Name: "watch-pid"},
	}, append(append([]cli.Flag{}, launchFlags...), leaseFlags...)...),
	Action: func(c *cli.Context) error {
		ready := os.NewFile(3, "ready")
		if ready == nil {
			return fmt.Errorf("%w: hold is started by prepare and launch only", errUsage)
		}
		defer ready.Close()
		err := hold(c, ready)
		if err != nil {
			report(ready, &holdReport{Error: err.Error(), ErrCode: exitCode(err)})
		}
		return err
	},
}

// hold takes the lease and keeps it; every error before the report goes
// back to the starter through ready.
func hold(c *cli.Context, ready *os.File) error {
	key, err := oneKey(c)
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	gone, err := watchPID(c.Int("watch-pid"))
	if err != nil {
		return err
	}
	root, err := openRoot(c, false)
	if err != nil {
		return err
	}
	opts, err := acquireOptions(c)
	if err != nil {
		return err
	}
	lease, err := root.Acquire(c.Context, key, c.String("mode"), os.Args, opts)
	if err != nil {
		return err
	}
	defer func() {
		if err := lease.Release(); err != nil {
			fmt.Fprintf(os.Stderr, "dindstore: %v\n", err)
		}
	}()
	rep := leaseReport(lease)
	p, err := startPayload(c, lease, c.StringSlice("arg"))
	if err != nil {
		return err
	}
	if p.ctr != nil {
		rep.ContainerID = p.ctr.ID
		if err := p.ctr.WaitReady(c.Context, c.Duration("ready-timeout")); err != nil {
			_ = p.stop()
			return err
		}
	}
	report(ready, rep)
	ready.Close()
	select {
	case s := <-sigs:
		fmt.Fprintf(os.Stderr, "dindstore: %v: releasing %s\n", s, key)
	case <-gone:
		fmt.Fprintf(os.Stderr, "dindstore: watched pid %d ended: releasing %s\n", c.Int("watch-pid"), key)
	case <-p.ended:
		fmt.Fprintf(os.Stderr, "dindstore: container %s ended: releasing %s\n", p.ctr.ID, key)
	}
	return p.stop()
}

func leaseReport(l *cache.Lease) *holdReport {
	rep := &holdReport{Key: l.Key(), Mount: l.MountPath(), Device: l.Device(), Driver: l.StorageDriver(),
		Kind: string(l.Record().Kind), HolderPID: os.Getpid()}
	if o := l.TookOver(); o != nil {
		rep.TookOver = o.PID
	}
	return rep
}

func report(w *os.File, rep *holdReport) {
	_ = json.NewEncoder(w).Encode(rep)
}
