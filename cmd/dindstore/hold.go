package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/dindstore/dindstore/cache"
	"github.com/dindstore/dindstore/handoff"
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

// hold takes the lease and keeps it (see handoff); every error before the
// report goes back to the starter through ready, the rest to the log.
func hold(c *cli.Context, ready *os.File) error {
	key, err := oneKey(c)
	if err != nil {
		return err
	}
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
	var p handoff.Payload = &handoff.Hold{Until: gone}
	if c.String("mode") != cache.ModePrepare {
		ctr, err := containerPayload(c, c.StringSlice("arg"))
		if err != nil {
			return err
		}
		ctr.ReadyTimeout, ctr.Until = c.Duration("ready-timeout"), gone
		p = ctr
	}
	var guard guardTimer
	defer guard.stop()
	acquire := handoff.From(root, key, c.String("mode"), os.Args, opts, guard.setup(root, key))
	reported := false
	started := func(l handoff.Lease) {
		rep := leaseReport(l.(*cache.Lease))
		if ctr, ok := p.(*handoff.Container); ok {
			rep.ContainerID = ctr.Ctr.ID
		}
		report(ready, rep)
		ready.Close()
		reported = true
	}
	_, err = handoff.Hand(c.Context, acquire, p, handoff.Options{CatchSignals: true, Started: started})
	if reported {
		fmt.Fprintf(os.Stderr, "dindstore: %s released (%v)\n", key, err)
		return nil // the starter is gone; the record tells `release` how it went
	}
	return err
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
