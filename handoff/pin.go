package handoff

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/dindstore/dindstore/cache"
	"github.com/dindstore/dindstore/dockerd"
)

// PinCommand pins the image store and storage driver of a command run on
// a cache lease (a Command's Pin): a dockerd gets --feature
// containerd-snapshotter (engines 24+) and --storage-driver; every command
// gets DOCKER_DRIVER once the cache's store is known. A dockerd that would
// open the cache with the other image store is refused. Warnings go to
// stderr.
func PinCommand(l Lease, argv, env []string) ([]string, []string, error) {
	lease, ok := l.(*cache.Lease)
	if !ok {
		return argv, env, nil
	}
	store := lease.ImageStore()
	if store == "" && lease.StorageDriver() == "vfs" {
		store = dockerd.StoreGraphDriver // vfs caches keep dockerd's own vfs driver
	}
	if dockerd.IsDockerd(argv) {
		var err error
		if argv, store, err = pinDockerd(lease, argv, store); err != nil {
			return nil, nil, err
		}
	}
	if store == "" {
		// Some other command (a script) will start the daemon: its engine
		// picks the store, and the release records what it used. Overlay
		// works here (probed), so nothing falls back to vfs.
		return argv, env, nil
	}
	driver := dockerd.DriverFor(store, lease.StorageDriver())
	argv, err := dockerd.PinArgs(argv, driver, false)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", cache.ErrInvalid, err)
	}
	env, warning := dockerd.PinEnv(env, driver)
	if warning != "" {
		fmt.Fprintf(os.Stderr, "dindstore: WARNING: %s\n", warning)
	}
	return argv, env, nil
}

// pinDockerd decides the image store of a dockerd command line on the
// cache, records it, and pins it in the arguments.
func pinDockerd(lease *cache.Lease, argv []string, store string) ([]string, string, error) {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return nil, "", fmt.Errorf("%w: %s: %w", cache.ErrInvalid, argv[0], err)
	}
	eng, err := dockerd.ProbeEngine(path)
	if err != nil {
		return nil, "", err
	}
	requested := dockerd.RequestedStore(argv)
	if store == "" && requested == "" {
		eng.Major = dockerd.ProbeMajor(path) // a fresh cache: the engine's own default decides
	}
	if store, err = dockerd.DecideStore(store, requested, eng); err != nil {
		return nil, "", fmt.Errorf("cache %s: %w", lease.Key(), err)
	}
	if err := lease.SetImageStore(store); err != nil {
		return nil, "", err
	}
	argv = dockerd.PinStore(argv, store, eng, false)
	warnExternalContainerd(argv)
	return argv, store, nil
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

// From is Hand's acquire step for a cache of root: the lease of key in
// mode (with command as the holder's in its owner record), then setup, if
// any, on it (reports, a guard, a reset); a setup that fails releases the
// lease again.
func From(root *cache.Root, key, mode string, command []string, opts cache.AcquireOptions,
	setup func(*cache.Lease) error) func(context.Context) (Lease, error) {
	return func(ctx context.Context) (Lease, error) {
		lease, err := root.Acquire(ctx, key, mode, command, opts)
		if err != nil {
			return nil, err
		}
		if setup != nil {
			if err := setup(lease); err != nil {
				return nil, errors.Join(err, lease.Release(context.WithoutCancel(ctx)))
			}
		}
		return lease, nil
	}
}
