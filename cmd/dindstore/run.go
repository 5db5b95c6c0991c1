package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/dindstore/dindstore/cache"
	"github.com/dindstore/dindstore/handoff"
	"github.com/urfave/cli/v2"
)

var runCommand = &cli.Command{
	Name:      "run",
	Usage:     "hold a cache, mount it, and run a command on it (e.g. dockerd --data-root {mount})",
	ArgsUsage: "KEY [create flags] -- CMD [ARGS...]",
	Description: "Creates the cache when missing, takes its lock, mounts it, and runs CMD with every\n" +
		"argument \"{mount}\" replaced by the mount path and DINDSTORE_MOUNT in its environment, in a\n" +
		"process group of its own (a cgroup) that ends whole with the lease.\n" +
		"A dockerd command gets --storage-driver pinned to what the cache supports (overlay2, or vfs\n" +
		"for a vfs cache) and DOCKER_DRIVER is set to the same; a --storage-driver that disagrees is\n" +
		"refused. SIGINT, SIGTERM, SIGHUP and SIGQUIT are passed on to CMD; --stop-timeout after SIGTERM or\n" +
		"SIGINT, the whole tree is killed. When CMD exits, what is left of its tree is killed, the cache\n" +
		"is checked, unmounted and released, and dindstore exits with CMD's status (128+N if killed by\n" +
		"signal N) -- or non-zero when the release failed (74 damaged, 75 still in use).",
	Flags: append(append(append([]cli.Flag{}, createFlags...), leaseFlags...), stopTimeoutFlag,
		&cli.StringFlag{Name: "commit-on", Usage: "success: when CMD exits 0, commit this clone into its warm cache (--from)"},
		&cli.BoolFlag{Name: "reset", Usage: "empty the cache first (to start over with another image store)"},
		keepFlag),
	Action: func(c *cli.Context) error {
		key, argv, err := runArgs(c)
		if err != nil {
			return err
		}
		if on := c.String("commit-on"); on != "" && on != "success" {
			return fmt.Errorf("%w: --commit-on %q: the only condition is success", errUsage, on)
		}
		root, created, err := ensureCacheCreated(c, key, false)
		if err != nil {
			return err
		}
		err = dropUnused(c, root, key, created, runLeased(c, root, key, argv, c.Bool("reset")))
		if err == nil && c.String("commit-on") == "success" {
			err = promote(c, root, key)
		}
		return afterJob(c, root, key, err)
	},
}

// runArgs splits `KEY [--] CMD [ARGS...]`.
func runArgs(c *cli.Context) (string, []string, error) {
	key, rest, err := keyAndRest(c)
	if err == nil && len(rest) == 0 {
		err = fmt.Errorf("%w: run needs KEY -- CMD [ARGS...]", errUsage)
	}
	return key, rest, err
}

// runLeased hands the cache to argv (see handoff.Hand) and turns the
// outcome into dindstore's exit status.
func runLeased(c *cli.Context, root *cache.Root, key string, argv []string, reset bool) error {
	opts, err := acquireOptions(c)
	if err != nil {
		return err
	}
	var guard guardTimer
	defer guard.stop()
	setupGuard := guard.setup(root, key)
	acquire := handoff.From(root, key, cache.ModeRun, os.Args, opts, func(lease *cache.Lease) error {
		if err := setupGuard(lease); err != nil {
			return err
		}
		reportTakeover(lease)
		if reset {
			return lease.Reset()
		}
		return nil
	})
	cmd := &handoff.Command{Argv: argv, Pin: handoff.PinCommand}
	status, err := handoff.Hand(c.Context, acquire, cmd,
		handoff.Options{CatchSignals: true, StopTimeout: c.Duration(stopTimeoutFlag.Name)})
	return exitFor(status, err)
}

// exitFor turns a handoff's outcome into the CLI's: a command that could
// not be started is 127, a failed release never lets a success through,
// and beside a failure's status its error is printed once.
func exitFor(status int, err error) error {
	var execErr *exec.Error
	var pathErr *os.PathError
	switch {
	case status == handoff.NotStarted && (errors.As(err, &execErr) || errors.As(err, &pathErr)):
		fmt.Fprintf(os.Stderr, "dindstore: %v\n", err)
		return cli.Exit("", handoff.ExitNotFound)
	case status == handoff.NotStarted, err != nil && status == 0:
		return err
	case err != nil:
		fmt.Fprintf(os.Stderr, "dindstore: %v\n", err)
	}
	if status == 0 {
		return nil
	}
	return cli.Exit("", status)
}

// reportTakeover says on stderr what the lease had to clear first.
func reportTakeover(lease *cache.Lease) {
	key := lease.Key()
	if o := lease.TookOver(); o != nil {
		fmt.Fprintf(os.Stderr, "dindstore: took over cache %s from a holder that is gone (pid %d, %s, since %s)\n",
			key, o.PID, o.CommandLine(), o.Acquired.Format(time.RFC3339))
	}
	for _, f := range lease.Repaired() {
		switch {
		case f.What == cache.FindStaleOwner:
		case f.Note != "":
			fmt.Fprintf(os.Stderr, "dindstore: %s %s: %s\n", f.What, f.Path, f.Note)
		default:
			fmt.Fprintf(os.Stderr, "dindstore: cleared %s %s left by the earlier holder\n", f.What, f.Path)
		}
	}
	if r := lease.RepairedAtMount(); r != "" {
		fmt.Fprintf(os.Stderr, "dindstore: WARNING: the check before mounting %s repaired it: %s\n", key, r)
	}
}
