package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dindstore/dindstore/cache"
	"github.com/dindstore/dindstore/dockerd"
	"github.com/dindstore/dindstore/handoff"
	"github.com/dindstore/dindstore/launch"
	"github.com/urfave/cli/v2"
)

// launchFlags describe the dind container; the detached holder gets them
// forwarded (forwardFlags).
var launchFlags = []cli.Flag{
	&cli.StringFlag{Name: "image", Usage: "dind image to start (docker:dind style)"},
	&cli.StringFlag{Name: "name", Usage: "container name"},
	&cli.StringFlag{Name: "runtime", Usage: "OCI runtime that nests without --privileged (e.g. sysbox-runc); the container is then not privileged"},
	&cli.StringFlag{Name: "target", Value: launch.DefaultTarget, Usage: "where the cache is mounted in the container (rootless: /home/rootless/.local/share/docker)"},
	&cli.StringFlag{Name: "owner", Usage: "UID:GID to give the cache's root directory (rootless images run as 1000:1000)"},
	&cli.StringFlag{Name: "network", Usage: "network to attach the container to"},
	&cli.StringSliceFlag{Name: "network-alias", Usage: "alias on --network (e.g. docker)"},
	&cli.StringSliceFlag{Name: "env", Aliases: []string{"e"}, Usage: "environment (e.g. DOCKER_TLS_CERTDIR=/certs)"},
	&cli.StringSliceFlag{Name: "volume", Aliases: []string{"v"}, Usage: "extra volume, as docker run -v (e.g. certs:/certs/client)"},
	&cli.StringSliceFlag{Name: "publish", Aliases: []string{"p"}, Usage: "publish a port, as docker run -p"},
	&cli.BoolFlag{Name: "keep", Usage: "keep the container when it ends (it is removed otherwise)"},
	&cli.DurationFlag{Name: "ready-timeout", Value: 2 * time.Minute, Usage: "with --detach: how long to wait for the inner daemon"},
	&cli.StringSliceFlag{Name: "arg", Hidden: true},
}

var launchCommand = &cli.Command{
	Name:      "launch",
	Usage:     "start a dind container on a cache through the Docker API; the lease lives as long as the container",
	ArgsUsage: "KEY [create flags] --image IMAGE [--name N] [--detach] [--runtime NAME] [-- ARGS]",
	Description: "Creates the cache when missing, takes it, and starts a privileged container from IMAGE with\n" +
		"the cache at /var/lib/docker (--target), labelled with the key, with the storage driver pinned\n" +
		"(--storage-driver among ARGS when they are dockerd's, and DOCKER_DRIVER). When the container\n" +
		"ends, or is removed, the cache is unmounted and released. --detach returns once the inner\n" +
		"daemon answers and leaves a holder behind; `dindstore release KEY` stops the container.",
	Flags: append(append(append(append([]cli.Flag{}, createFlags...), launchFlags...), leaseFlags...),
		&cli.BoolFlag{Name: "detach", Aliases: []string{"d"}, Usage: "return once the inner daemon answers"}, keepFlag),
	Action: func(c *cli.Context) error {
		key, args, err := keyAndRest(c)
		if err != nil {
			return err
		}
		if _, err := launchSpec(c, args); err != nil {
			return err
		}
		if _, _, err := parseOwner(c.String("owner")); err != nil {
			return err
		}
		root, err := ensureCache(c, key, false)
		if err != nil {
			return err
		}
		if c.Bool("detach") {
			rep, err := startHolder(root, key, append([]string{"--mode", cache.ModeLaunch}, forwardFlags(c, args)...)...)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(c.App.Writer, "%s\n", rep.ContainerID)
			return err
		}
		return afterJob(c, root, key, launchForeground(c, root, key, args))
	},
}

// launchSpec reads the container's description from the flags.
func launchSpec(c *cli.Context, args []string) (launch.Spec, error) {
	spec := launch.Spec{
		Image: c.String("image"), Name: c.String("name"), Runtime: c.String("runtime"), Target: c.String("target"),
		Network: c.String("network"), Aliases: c.StringSlice("network-alias"), Env: c.StringSlice("env"),
		Volumes: c.StringSlice("volume"), Publish: c.StringSlice("publish"), Args: args, Keep: c.Bool("keep"),
	}
	if err := spec.Validate(); err != nil {
		return spec, fmt.Errorf("%w: %w", errUsage, err)
	}
	return spec, nil
}

// parseOwner reads --owner UID:GID; empty is no change (-1, -1).
func parseOwner(s string) (uid, gid int, err error) {
	if s == "" {
		return -1, -1, nil
	}
	u, g, ok := strings.Cut(s, ":")
	uid, err1 := strconv.Atoi(u)
	gid, err2 := strconv.Atoi(g)
	if !ok || err1 != nil || err2 != nil || uid < 0 || gid < 0 {
		return 0, 0, fmt.Errorf("%w: --owner %q: want UID:GID, e.g. 1000:1000", errUsage, s)
	}
	return uid, gid, nil
}

// forwardFlags turns the launch flags that were set into arguments for
// the detached holder, the dind ARGS as --arg.
func forwardFlags(c *cli.Context, args []string) []string {
	var out []string
	for _, f := range append(append([]cli.Flag{}, launchFlags...), leaseFlags...) {
		name := f.Names()[0]
		if !c.IsSet(name) || name == "arg" {
			continue
		}
		switch f.(type) {
		case *cli.StringSliceFlag:
			for _, v := range c.StringSlice(name) {
				out = append(out, "--"+name+"="+v)
			}
		case *cli.BoolFlag:
			out = append(out, "--"+name+"="+strconv.FormatBool(c.Bool(name)))
		default:
			out = append(out, "--"+name+"="+fmt.Sprint(c.Value(name)))
		}
	}
	for _, a := range args {
		out = append(out, "--arg="+a)
	}
	return out
}

// launchForeground holds the cache while the container runs; a signal
// stops the container (see handoff.Container).
func launchForeground(c *cli.Context, root *cache.Root, key string, args []string) error {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	opts, err := acquireOptions(c)
	if err != nil {
		return err
	}
	var guard guardTimer
	defer guard.stop()
	acquire := handoff.From(root, key, cache.ModeLaunch, os.Args, opts, guard.setup(root, key))
	p := &handoff.Container{Begin: beginContainer(c, args)}
	started := func(handoff.Lease) { fmt.Fprintf(c.App.Writer, "%s\n", p.Ctr.ID) }
	status, err := handoff.Hand(c.Context, acquire, p, handoff.Options{Signals: sigs, Started: started})
	return exitFor(status, err)
}

// beginContainer starts the lease's dind container: spec from the flags
// and ARGS, pinned, labelled, the mount's owner set, and the container
// recorded in the owner record.
func beginContainer(c *cli.Context, args []string) func(context.Context, handoff.Lease) (*launch.Container, error) {
	return func(ctx context.Context, l handoff.Lease) (*launch.Container, error) {
		lease := l.(*cache.Lease)
		spec, err := launchSpec(c, args)
		if err != nil {
			return nil, err
		}
		if err := pinLaunch(lease, &spec); err != nil {
			return nil, err
		}
		spec.Labels = map[string]string{launch.LabelKey: lease.Key(), launch.LabelRoot: c.String(rootFlag.Name)}
		if spec.Keep {
			spec.Labels[launch.LabelKeep] = "true"
		}
		if err := chownMount(c.String("owner"), lease.MountPath()); err != nil {
			return nil, err
		}
		api, err := launch.NewClient()
		if err != nil {
			return nil, err
		}
		ctr, err := launch.Start(ctx, api, spec, lease.MountPath())
		if err != nil {
			return nil, err
		}
		if err := lease.SetContainer(ctr.ID, ctr.Started); err != nil {
			return nil, errors.Join(err, ctr.Stop(context.Background()))
		}
		return ctr, nil
	}
}

// pinLaunch pins the dind container's image store and storage driver: the
// cache's recorded store, or the graph driver for a new cache (every dind
// image's engine has it); and gives /var/lib/containerd a directory of the
// cache, for images that run a containerd of their own, so that nothing
// lives outside it.
func pinLaunch(lease *cache.Lease, spec *launch.Spec) error {
	store := lease.ImageStore()
	if store == "" {
		store = dockerd.StoreGraphDriver
	}
	driver := dockerd.DriverFor(store, lease.StorageDriver())
	var err error
	if spec.Args, err = dockerd.PinArgs(spec.Args, driver, true); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	// Only an engine with the containerd store can have filled a cache with
	// it: it knows --feature. Any dind image's engine knows the graph driver.
	spec.Args = dockerd.PinStore(spec.Args, store, dockerd.Engine{Features: store == dockerd.StoreSnapshotter}, true)
	if err := lease.SetImageStore(store); err != nil {
		return err
	}
	var warning string
	if spec.Env, warning = dockerd.PinEnv(spec.Env, driver); warning != "" {
		fmt.Fprintf(os.Stderr, "dindstore: WARNING: %s\n", warning)
	}
	spec.ContainerdRoot = filepath.Join(lease.MountPath(), ".dindstore-containerd")
	return os.MkdirAll(spec.ContainerdRoot, 0o711)
}

// chownMount gives the cache's root directory to --owner.
func chownMount(owner, mount string) error {
	uid, gid, err := parseOwner(owner)
	if err != nil || uid < 0 {
		return err
	}
	if err := os.Lchown(mount, uid, gid); err != nil {
		return fmt.Errorf("give %s to %s: %w", mount, owner, err)
	}
	return nil
}
