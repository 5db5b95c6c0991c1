package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/dindstore/dindstore/cache"
	"github.com/dindstore/dindstore/internal/fault"
	"github.com/dindstore/dindstore/overlay"
	"github.com/dindstore/dindstore/proctree"
	"github.com/urfave/cli/v2"
)

// mountPlaceholder in CMD's arguments is replaced by the mount path.
const mountPlaceholder = "{mount}"

// exitNotFound is the shell's status for a command that could not be run.
const exitNotFound = 127

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
	Flags: append(append(append([]cli.Flag{}, createFlags...), append(leaseFlags, stopTimeoutFlag)...),
		&cli.StringFlag{Name: "commit-on", Usage: "success: when CMD exits 0, commit this clone into its warm cache (--from)"},
		&cli.BoolFlag{Name: "reset", Usage: "empty the cache first (to start over with another image store)"}),
	Action: func(c *cli.Context) error {
		key, argv, err := runArgs(c)
		if err != nil {
			return err
		}
		if on := c.String("commit-on"); on != "" && on != "success" {
			return fmt.Errorf("%w: --commit-on %q: the only condition is success", errUsage, on)
		}
		root, err := ensureCache(c, key, false)
		if err != nil {
			return err
		}
		err = runLeased(c, root, key, argv, c.Bool("reset"))
		if err == nil && c.String("commit-on") == "success" {
			return promote(c, root, key)
		}
		return err
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

// runLeased holds the cache while argv runs, and returns CMD's exit status
// as a cli exit error. A release that fails (damage found, a mount still
// used) never lets a successful command's status through.
func runLeased(c *cli.Context, root *cache.Root, key string, argv []string, reset bool) (retErr error) {
	opts, err := acquireOptions(c)
	if err != nil {
		return err
	}
	// Catch signals from here on: one that arrives while the cache is being
	// mounted must end in a clean release, not in a half-held cache.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	lease, err := root.Acquire(c.Context, key, cache.ModeRun, os.Args, opts)
	if err != nil {
		return err
	}
	defer func() { retErr = releaseAfter(lease, retErr) }()
	if lease.Group() != nil {
		startGuard(root, key)
	}
	reportTakeover(lease)
	if reset {
		if err := lease.Reset(); err != nil {
			return err
		}
	}
	argv, env, err := pinCommand(lease, argv)
	if err != nil {
		return err
	}
	ch := &child{mount: lease.MountPath(), group: lease.Group(), stopTimeout: c.Duration(stopTimeoutFlag.Name)}
	status, err := ch.run(argv, env, sigs)
	if err != nil {
		fmt.Fprintf(os.Stderr, "dindstore: %v\n", err)
	}
	if status == 0 {
		return nil
	}
	return cli.Exit("", status)
}

// releaseAfter releases the lease after the command: a release error
// replaces a success, and is printed (once) beside a failure's status.
func releaseAfter(lease *cache.Lease, cmdErr error) error {
	rerr := lease.Release()
	switch {
	case rerr == nil:
		return cmdErr
	case cmdErr == nil:
		return rerr
	}
	fmt.Fprintf(os.Stderr, "dindstore: %v\n", rerr)
	return cmdErr
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

// child is the command run starts on the mounted cache.
type child struct {
	mount       string
	group       *proctree.Group // the lease's process group; nil without one
	stopTimeout time.Duration
}

// run runs argv with the mount filled in, in the lease's process group,
// passing the signals from sigs on, and returns its exit status. A signal
// that came before the start means the command is not started at all.
// SIGTERM or SIGINT starts the stop timeout: when it runs out, the whole
// tree is killed and the status is 128+the signal. The cache's lock
// descriptor is close-on-exec, so the child and its descendants never hold
// it.
func (ch *child) run(argv, env []string, sigs chan os.Signal) (int, error) {
	args := make([]string, len(argv))
	for i, a := range argv {
		args[i] = strings.ReplaceAll(a, mountPlaceholder, ch.mount)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(env, "DINDSTORE_MOUNT="+ch.mount)
	select {
	case s := <-sigs:
		return 128 + int(s.(syscall.Signal)), fmt.Errorf("got %v before %s started; not starting it", s, args[0])
	default:
	}
	if err := ch.start(cmd); err != nil {
		return exitNotFound, fmt.Errorf("start %s: %w", args[0], err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	faulted := treeFault()
	var stopped syscall.Signal
	var deadline <-chan time.Time
	for {
		select {
		case ferr := <-faulted:
			fmt.Fprintf(os.Stderr, "dindstore: %v: killing the command's whole tree\n", ferr)
			ch.killTree(cmd)
			stopped = syscall.SIGKILL
		case s := <-sigs:
			_ = cmd.Process.Signal(s)
			if sig := s.(syscall.Signal); stopped == 0 && (sig == syscall.SIGTERM || sig == syscall.SIGINT) {
				stopped, deadline = sig, time.After(ch.stopTimeout)
			}
		case <-deadline:
			fmt.Fprintf(os.Stderr, "dindstore: %s did not stop within %s of %v: killing its whole tree\n",
				args[0], ch.stopTimeout, stopped)
			ch.killTree(cmd)
		case err := <-waited:
			status, werr := exitStatus(err)
			if stopped == syscall.SIGKILL {
				status = exitFailure // the injected failure ended it
			} else if stopped != 0 && status == 128+int(syscall.SIGKILL) {
				status = 128 + int(stopped)
			}
			return status, werr
		}
	}
}

// treeFault arms the failure point while-tree-runs (a -tags faults build
// only): it fires once the command's tree had time to start. In kill mode
// dindstore dies there; in error mode the channel yields the error.
func treeFault() <-chan error {
	if !fault.Enabled {
		return nil
	}
	ch := make(chan error, 1)
	go func() {
		time.Sleep(time.Second)
		if err := fault.Point("while-tree-runs"); err != nil {
			ch <- err
		}
	}()
	return ch
}

// start starts cmd straight into the lease's process group, so that no
// fork of it escapes the group.
func (ch *child) start(cmd *exec.Cmd) error {
	cmd.SysProcAttr = childProcAttr()
	if ch.group == nil {
		return cmd.Start()
	}
	dir, err := ch.group.Dir()
	if err != nil {
		return err
	}
	defer dir.Close()
	setCgroup(cmd.SysProcAttr, int(dir.Fd()))
	return cmd.Start()
}

// killTree SIGKILLs the command and everything of its lease.
func (ch *child) killTree(cmd *exec.Cmd) {
	_ = cmd.Process.Kill()
	if ch.group != nil {
		_ = ch.group.Signal(syscall.SIGKILL)
	}
}

// exitStatus turns Wait's error into a shell-style exit status.
func exitStatus(err error) (int, error) {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		if err != nil {
			return exitFailure, err
		}
		return 0, nil
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return ee.ExitCode(), nil
}

// pinCommand pins the image store and storage driver of the command: a
// dockerd gets --feature containerd-snapshotter (engines 24+) and
// --storage-driver; every command gets DOCKER_DRIVER once the cache's store
// is known. A dockerd that would open the cache with the other image store
// is refused.
func pinCommand(lease *cache.Lease, argv []string) ([]string, []string, error) {
	store := lease.ImageStore()
	if store == "" && lease.StorageDriver() == "vfs" {
		store = overlay.StoreGraphDriver // vfs caches keep dockerd's own vfs driver
	}
	if overlay.IsDockerd(argv) {
		path, err := exec.LookPath(argv[0])
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %s: %w", errUsage, argv[0], err)
		}
		eng, err := overlay.ProbeEngine(path)
		if err != nil {
			return nil, nil, err
		}
		if store, err = overlay.DecideStore(store, overlay.RequestedStore(argv), eng); err != nil {
			return nil, nil, fmt.Errorf("cache %s: %w", lease.Key(), err)
		}
		if err := lease.SetImageStore(store); err != nil {
			return nil, nil, err
		}
		argv = overlay.PinStore(argv, store, eng, false)
		warnExternalContainerd(argv)
	}
	if store == "" {
		// Some other command (a script) will start the daemon: its engine
		// picks the store, and the release records what it used. Overlay
		// works here (probed), so nothing falls back to vfs.
		return argv, os.Environ(), nil
	}
	driver := overlay.DriverFor(store, lease.StorageDriver())
	argv, err := overlay.PinArgs(argv, driver, false)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	env, warning := overlay.PinEnv(os.Environ(), driver)
	if warning != "" {
		fmt.Fprintf(os.Stderr, "dindstore: WARNING: %s\n", warning)
	}
	return argv, env, nil
}

// warnExternalContainerd says when a dockerd is pointed at a containerd of
// its own: that containerd keeps its snapshots outside the cache.
func warnExternalContainerd(argv []string) {
	for _, a := range argv {
		if a == "--containerd" || strings.HasPrefix(a, "--containerd=") {
			fmt.Fprintf(os.Stderr, "dindstore: WARNING: dockerd uses an external containerd (--containerd): its "+
				"images and snapshots live under that containerd's root, not in the cache\n")
		}
	}
}
