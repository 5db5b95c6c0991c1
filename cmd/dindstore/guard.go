package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/dindstore/dindstore/cache"
	"github.com/dindstore/dindstore/launch"
	"github.com/urfave/cli/v2"
)

// guardCommand outlives a run holder that is killed: it waits for the
// holder to end and then repairs the key as recover would, so that a dead
// lease's tree (daemons, shims, containers) is ended within moments, not
// only at the next use. After a clean release it finds nothing to do.
var guardCommand = &cli.Command{
	Name:      "guard",
	Hidden:    true,
	ArgsUsage: "KEY",
	Flags:     []cli.Flag{&cli.IntFlag{Name: "holder", Required: true}},
	Action: func(c *cli.Context) error {
		key, err := oneKey(c)
		if err != nil {
			return err
		}
		if gone, err := watchPID(c.Int("holder")); err == nil {
			<-gone
		} // else the holder is gone already (ESRCH)
		root, err := cache.OpenRootNoCreate(c.String(rootFlag.Name))
		if err != nil {
			return nil // the root went away with its caches: nothing to guard
		}
		if o := root.DeadOwner(key, c.Int("holder")); o != nil && o.ContainerID != "" {
			stopDeadContainer(c.Context, key, o.ContainerID)
		}
		findings, err := root.Reap(c.Context, key, c.Int("holder"))
		for _, f := range findings {
			fmt.Fprintf(os.Stderr, "%s dindstore guard: holder %d of %s is gone: %s\n",
				time.Now().UTC().Format(time.RFC3339), c.Int("holder"), key, f)
		}
		// A warm's daemon directory (socket, exec root): its tree is ended.
		return errors.Join(err, launch.RemoveDaemonDirs(c.Int("holder")))
	},
}

// startGuard starts the guard of a lease held by this process: detached
// (its own session, not in the lease's group, no parent-death signal), with
// its output in the key's log. A guard that cannot start is only a warning:
// the next use or recover still ends a dead lease's tree.
func startGuard(root *cache.Root, key string) {
	logf, err := root.OpenLog(key)
	if err != nil {
		fmt.Fprintf(os.Stderr, "dindstore: WARNING: no guard for %s: %v\n", key, err)
		return
	}
	defer logf.Close()
	cmd := exec.Command("/proc/self/exe", "--root", root.Path(), "guard", key, "--holder", strconv.Itoa(os.Getpid()))
	cmd.Args[0] = os.Args[0]
	cmd.Dir, cmd.Stdout, cmd.Stderr = "/", logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "dindstore: WARNING: no guard for %s: %v\n", key, err)
		return
	}
	_ = cmd.Process.Release()
}

// guardDelay is how long a lease runs before its guard starts. Most short
// jobs (a `run KEY -- true`, a hook) end before it and never pay for a
// second process; a holder killed within it leaves its lease to the next
// use or recover, as when the guard itself is killed.
const guardDelay = 100 * time.Millisecond

// guardTimer starts a lease's guard once the lease has run for guardDelay.
type guardTimer struct{ t *time.Timer }

// setup is the lease's setup step: it arms the guard for every lease with
// a process group (see startGuard).
func (g *guardTimer) setup(root *cache.Root, key string) func(*cache.Lease) error {
	return func(lease *cache.Lease) error {
		if lease.Group() != nil {
			g.t = time.AfterFunc(guardDelay, func() { startGuard(root, key) })
		}
		return nil
	}
}

// stop disarms a guard that has not started (the lease ended first).
func (g *guardTimer) stop() {
	if g.t != nil {
		g.t.Stop()
	}
}

// stopDeadContainer stops (and removes, unless it was launched with
// --keep) the dind container of a holder that died: the container is the
// lease's payload, and ends with it.
func stopDeadContainer(ctx context.Context, key, id string) {
	api, err := launch.NewClient()
	if err == nil {
		var ctr *launch.Container
		if ctr, err = launch.Adopt(ctx, api, id); err == nil {
			err = ctr.Stop(ctx)
		}
	}
	if err != nil && !errdefs.IsNotFound(err) {
		fmt.Fprintf(os.Stderr, "%s dindstore guard: %s: stop container %s of the dead holder: %v\n",
			time.Now().UTC().Format(time.RFC3339), key, id, err)
	}
}
