package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/dindstore/dindstore/cache"
	"github.com/urfave/cli/v2"
)

// leaseFlags are shared by every command that takes a cache for a daemon
// (run, prepare, launch, warm).
var leaseFlags = []cli.Flag{
	&cli.BoolFlag{Name: "kill-users", Usage: "end processes that still use the cache's image but were never part of a lease (otherwise they are named and the command exits 75)"},
	&cli.BoolFlag{Name: "overcommit", Usage: "mount a loop cache even when the host cannot hold what the caches in use may still write"},
	&cli.StringFlag{Name: "keep-free", Usage: "admission floor: share of the host filesystem the caches in use may not claim (default 5%, or prune's keep-free from the config file)"},
}

// acquireOptions reads the lease flags.
func acquireOptions(c *cli.Context) (cache.AcquireOptions, error) {
	o := cache.AcquireOptions{KillUsers: c.Bool("kill-users"), Overcommit: c.Bool("overcommit")}
	var err error
	o.KeepFree, err = keepFreeFraction(c.String("keep-free"))
	return o, err
}

// keepFreeFraction reads --keep-free, a percentage, as the fraction
// AcquireOptions.KeepFree is ("": 0, the default).
func keepFreeFraction(s string) (float64, error) {
	if s == "" {
		return 0, nil
	}
	pct, err := cache.ParsePercent(s)
	if err != nil {
		return 0, fmt.Errorf("%w: --keep-free: %w", errUsage, err)
	}
	return pct / 100, nil
}

// stopTimeoutFlag is how long run waits after passing SIGTERM/SIGINT on
// before it ends the whole tree with SIGKILL.
var stopTimeoutFlag = &cli.DurationFlag{Name: "stop-timeout", Value: 10 * time.Second,
	Usage: "after passing SIGTERM or SIGINT on, wait this long, then SIGKILL the command's whole tree (like docker stop)"}

// keepFlag keeps a per-job cache (made by --from) after its job.
var keepFlag = &cli.BoolFlag{Name: "keep-cache", Usage: "keep a per-job cache made by --from after the job (for debugging); " +
	"by default it is removed unless committed"}

// afterJob removes the job's cache when it is a per-job one (see
// cache.Root.DropPerJob) and --keep is not given; jobErr is the job's
// outcome, which a failed removal never hides. A cache someone else holds
// is not ours to remove.
func afterJob(c *cli.Context, root *cache.Root, key string, jobErr error) error {
	if c.Bool(keepFlag.Name) || errors.Is(jobErr, cache.ErrLocked) {
		return jobErr
	}
	dropped, err := root.DropPerJob(c.Context, key)
	switch {
	case err != nil && jobErr == nil:
		return err
	case err != nil:
		fmt.Fprintf(os.Stderr, "dindstore: remove per-job cache %s: %v\n", key, err)
	case dropped:
		fmt.Fprintf(c.App.ErrWriter, "%s: per-job cache removed (--keep-cache keeps it)\n", key)
	}
	return jobErr
}
