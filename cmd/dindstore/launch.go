package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/dindstore/dindstore/cache"
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
	&cli.BoolFlag{Name: "unprivileged", Usage: "start the dind container without --privileged: no host devices, only the capabilities an inner engine needs (docs/security.md)"},
	&cli.BoolFlag{Name: "rootless", Usage: "a docker:dind-rootless style image (also when the image's user is not root): not privileged, the cache given to its user once"},
	&cli.StringFlag{Name: "target", Usage: "where the cache is mounted in the container (default /var/lib/docker; rootless: /home/rootless/.local/share/docker)"},
	&cli.StringFlag{Name: "owner", Usage: "UID:GID to give the cache's root directory, once (rootless: the image's user, else 1000:1000)"},
	&cli.StringFlag{Name: "network", Usage: "network to attach the container to"},
	&cli.StringSliceFlag{Name: "network-alias", Usage: "alias on --network (e.g. docker)"},
	&cli.StringSliceFlag{Name: "env", Aliases: []string{"e"}, Usage: "environment (e.g. DOCKER_TLS_CERTDIR=/certs)"},
	&cli.StringSliceFlag{Name: "volume", Aliases: []string{"v"}, Usage: "extra volume, as docker run -v (e.g. certs:/certs/client)"},
	&cli.StringSliceFlag{Name: "publish", Aliases: []string{"p"}, Usage: "publish a port, as docker run -p"},
	&cli.StringSliceFlag{Name: "device", Usage: "pass a host device, as docker run --device (HOST[:CONTAINER[:PERMS]])"},
	&cli.BoolFlag{Name: "keep", Usage: "keep the container when it ends (it is removed otherwise)"},
	&cli.DurationFlag{Name: "ready-timeout", Value: 2 * time.Minute, Usage: "with --detach: how long to wait for the inner daemon"},
	&cli.StringSliceFlag{Name: "arg", Hidden: true},
	&cli.StringFlag{Name: "image-store", Usage: "image store for a fresh cache: containerd or graphdriver (default: as the " +
		"daemon's flags say, else the image's engine's own default: containerd from Docker 29); a cache keeps the store it was filled with"},
}

var launchCommand = &cli.Command{
	Name:      "launch",
	Usage:     "start a dind container on a cache through the Docker API; the lease lives as long as the container",
	ArgsUsage: "KEY [create flags] --image IMAGE [--name N] [--detach] [--runtime NAME] [-- ARGS]",
	Description: "Creates the cache when missing, takes it, and starts a privileged container from IMAGE with\n" +
		"the cache at /var/lib/docker (--target), labelled with the key, with the storage driver pinned\n" +
		"(--storage-driver among ARGS when they are dockerd's, and DOCKER_DRIVER). --unprivileged starts\n" +
		"it without --privileged (no host devices; SYS_ADMIN, NET_ADMIN); an image whose user is not\n" +
		"root, or --rootless, runs rootless (the cache given to that user once); --runtime passes an\n" +
		"isolating runtime on (docs/security.md). When the container ends, or is removed, the cache is\n" +
		"unmounted and released. --detach returns once the inner daemon answers and leaves a holder\n" +
		"behind; `dindstore release KEY` stops the container.",
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
		root, created, err := ensureCacheCreated(c, key, false)
		if err != nil {
			return err
		}
		if c.Bool("detach") {
			rep, err := startHolder(root, key, append([]string{"--mode", cache.ModeLaunch}, forwardFlags(c, args)...)...)
			if err != nil {
				return dropUnused(c, root, key, created, err)
			}
			_, err = fmt.Fprintf(c.App.Writer, "%s\n", rep.ContainerID)
			return err
		}
		return afterJob(c, root, key, dropUnused(c, root, key, created, launchForeground(c, root, key, args)))
	},
}

// launchSpec reads the container's description from the flags.
func launchSpec(c *cli.Context, args []string) (launch.Spec, error) {
	spec := launch.Spec{
		Image: c.String("image"), Name: c.String("name"), Runtime: c.String("runtime"), Target: c.String("target"),
		Unprivileged: c.Bool("unprivileged"), Rootless: c.Bool("rootless"), Network: c.String("network"), Aliases: c.StringSlice("network-alias"), Env: c.StringSlice("env"),
		Volumes: c.StringSlice("volume"), Publish: c.StringSlice("publish"), Devices: c.StringSlice("device"), Args: args, Keep: c.Bool("keep"),
		ImageStore: c.String("image-store"),
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
	opts, err := acquireOptions(c)
	if err != nil {
		return err
	}
	p, err := containerPayload(c, args)
	if err != nil {
		return err
	}
	var guard guardTimer
	defer guard.stop()
	acquire := handoff.From(root, key, cache.ModeLaunch, os.Args, opts, guard.setup(root, key))
	started := func(handoff.Lease) { fmt.Fprintf(c.App.Writer, "%s\n", p.Ctr.ID) }
	status, err := handoff.Hand(c.Context, acquire, p, handoff.Options{CatchSignals: true, Started: started})
	return exitFor(status, err)
}

// containerPayload is the lease's dind container as the flags and ARGS
// describe it.
func containerPayload(c *cli.Context, args []string) (*handoff.Container, error) {
	spec, err := launchSpec(c, args)
	if err != nil {
		return nil, err
	}
	uid, gid, err := parseOwner(c.String("owner"))
	if err != nil {
		return nil, err
	}
	p := &handoff.Container{Spec: spec, RootPath: c.String(rootFlag.Name)}
	if uid >= 0 {
		p.Owner = &handoff.Owner{UID: uid, GID: gid}
	}
	return p, nil
}
