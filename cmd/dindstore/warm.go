package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/dindstore/dindstore/cache"
	"github.com/dindstore/dindstore/handoff"
	"github.com/dindstore/dindstore/internal/fault"
	"github.com/dindstore/dindstore/launch"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
	"github.com/urfave/cli/v2"
)

var warmCommand = &cli.Command{
	Name:      "warm",
	Usage:     "fill a cache ahead of the jobs: images from the host's daemon, or pulled through an inner one",
	ArgsUsage: "KEY (--from-host IMAGE... | --pull IMAGE... | --from-registry REGISTRY/REPOSITORY:TAG)",
	Description: "Takes the cache like any user (its lock), starts a dockerd of its own on it, and either\n" +
		"copies images from the host's Docker daemon (docker save from the host API, load into the\n" +
		"inner daemon: no registry involved) or pulls them (--registry-mirror for a pull-through\n" +
		"mirror). Ends with the inner daemon stopped cleanly and the filesystem trimmed.\n" +
		"--from-registry instead makes KEY (or its next generation) from a cache another host pushed\n" +
		"(dindstore push): no inner daemon, only the chunks KEY lacks are downloaded (as pull).",
	Flags: append(append(append(append([]cli.Flag{}, createFlags...), leaseFlags...),
		&cli.StringSliceFlag{Name: "from-host", Usage: "image to copy from the host's daemon (DOCKER_HOST)"},
		&cli.StringSliceFlag{Name: "pull", Usage: "image to pull through the inner daemon"},
		&cli.StringSliceFlag{Name: "registry-mirror", Usage: "pull-through mirror for the inner daemon"},
		&cli.StringSliceFlag{Name: "insecure-registry", Usage: "registry the inner daemon may reach over plain HTTP"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "show no progress"},
		&cli.StringFlag{Name: "from-registry", Usage: "a cache pushed to an OCI registry (dindstore push) to pull instead"},
	), registryAccessFlags...),
	Action: func(c *cli.Context) error {
		if c.NArg() > 1 {
			return fmt.Errorf("%w: warm takes one KEY, got %d arguments; give each image a flag of its own "+
				"(--from-host A --from-host B, or --pull A --pull B)", errUsage, c.NArg())
		}
		key, err := oneKey(c)
		if err != nil {
			return err
		}
		fromHost, pull := c.StringSlice("from-host"), c.StringSlice("pull")
		if ref := c.String("from-registry"); ref != "" {
			return warmFromRegistry(c, key, ref)
		}
		if len(fromHost) == 0 && len(pull) == 0 {
			return fmt.Errorf("%w: warm needs --from-host IMAGE or --pull IMAGE", errUsage)
		}
		root, created, err := ensureCacheCreated(c, key, false)
		if err != nil {
			return err
		}
		return dropUnused(c, root, key, created, warm(c, root, key, fromHost, pull))
	},
}

// warmFromRegistry makes key, or its next generation, from a pushed cache.
func warmFromRegistry(c *cli.Context, key, ref string) error {
	for _, f := range []string{"from-host", "pull"} { // (--kind, --size, --fs: the artifact's own apply)
		if c.IsSet(f) {
			return fmt.Errorf("%w: --from-registry brings a whole cache; it does not go with --%s", errUsage, f)
		}
	}
	root, err := openRoot(c, true)
	if err != nil {
		return err
	}
	res, err := pullCache(c, root, ref, key)
	if err != nil {
		return err
	}
	return printPull(c.App.Writer, key, res)
}

// warm holds the cache, runs an inner daemon on it, fills it, and stops
// (a handoff.Daemon payload: a signal cancels it).
func warm(c *cli.Context, root *cache.Root, key string, fromHost, pull []string) error {
	opts, err := acquireOptions(c)
	if err != nil {
		return err
	}
	log, err := root.OpenLog(key)
	if err != nil {
		return err
	}
	defer log.Close()
	prog := newProgress(os.Stderr, c.Bool("quiet"))
	defer prog.wait()
	d := &handoff.Daemon{Flags: warmFlags(c), Log: log, StartTimeout: 2 * time.Minute,
		Starting: func() func(error) {
			s := prog.step("start inner dockerd", 0, false)
			return func(err error) { s.done(err, false) }
		},
		Fill: func(ctx context.Context, inner *client.Client) error {
			return fillCache(ctx, inner, fromHost, pull, prog)
		}}
	var guard guardTimer
	defer guard.stop()
	acquire := handoff.From(root, key, cache.ModeWarm, os.Args, opts, guard.setup(root, key))
	_, err = handoff.Hand(c.Context, acquire, d, handoff.Options{CatchSignals: true})
	if err != nil && !errors.Is(err, handoff.ErrNotStarted) {
		err = fmt.Errorf("warm %q: %w; see %s", key, err, root.LogPath(key))
	}
	return err // a Daemon's status is 0 exactly when there is no error
}

// warmFlags are the inner dockerd's flags from warm's.
func warmFlags(c *cli.Context) []string {
	var flags []string
	for _, m := range c.StringSlice("registry-mirror") {
		flags = append(flags, "--registry-mirror", m)
	}
	for _, r := range c.StringSlice("insecure-registry") {
		flags = append(flags, "--insecure-registry", r)
	}
	return flags
}

// fillCache copies or pulls the images into the inner daemon.
func fillCache(ctx context.Context, inner *client.Client, fromHost, pull []string, prog *progress) error {
	if len(fromHost) > 0 {
		if err := copyFromHost(ctx, inner, fromHost, prog); err != nil {
			return err
		}
	}
	for _, ref := range pull {
		if err := pullImage(ctx, inner, ref, prog); err != nil {
			return err
		}
	}
	return nil
}

// copyFromHost streams `docker save` from the host's daemon into `docker
// load` of the inner one, an image at a time (layers the inner daemon has
// already are skipped by its load).
func copyFromHost(ctx context.Context, inner *client.Client, refs []string, prog *progress) error {
	host, err := launch.NewClient()
	if err != nil {
		return err
	}
	defer host.Close()
	var total int64
	for _, ref := range refs {
		info, err := host.ImageInspect(ctx, ref)
		if err != nil {
			return fmt.Errorf("image %s on the host: %w", ref, err)
		}
		total += info.Size
	}
	s := prog.step(fmt.Sprintf("copy %d images from the host", len(refs)), total, true)
	err = fault.Point("before-warm-copy")
	for i := 0; err == nil && i < len(refs); i++ {
		if err = copyImage(ctx, host, inner, refs[i], s); err == nil && i == 0 {
			err = fault.Point("during-warm-copy")
		}
	}
	if err == nil {
		err = fault.Point("after-warm-copy")
	}
	s.done(err, true)
	return err
}

// copyImage copies one image from the host's daemon into the inner one.
func copyImage(ctx context.Context, host, inner *client.Client, ref string, s *step) error {
	saved, err := host.ImageSave(ctx, []string{ref})
	if err != nil {
		return fmt.Errorf("save %s from the host: %w", ref, err)
	}
	defer saved.Close()
	resp, err := inner.ImageLoad(ctx, s.reader(saved))
	if err == nil {
		err = readJSONStream(resp.Body, nil)
		resp.Body.Close()
	}
	if err != nil {
		return fmt.Errorf("load %s into the cache: %w", ref, err)
	}
	return nil
}

// pullImage pulls ref through the inner daemon, one unit a layer.
func pullImage(ctx context.Context, inner *client.Client, ref string, prog *progress) error {
	rc, err := inner.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	defer rc.Close()
	s := prog.step("pull "+ref+" (layers)", 0, false)
	layers := map[string]bool{}
	err = readJSONStream(rc, func(m jsonmessage.JSONMessage) {
		if m.ID == "" || m.Status == "" || strings.HasPrefix(m.Status, "Pulling from") {
			return
		}
		if _, seen := layers[m.ID]; !seen {
			layers[m.ID] = false
			s.total(int64(len(layers)))
		}
		if (m.Status == "Pull complete" || m.Status == "Already exists") && !layers[m.ID] {
			layers[m.ID] = true
			s.add(1)
		}
	})
	s.done(err, false)
	if err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	return nil
}

// readJSONStream reads an engine's JSON message stream to its end, handing
// each message to fn, and returns the first error it reports.
func readJSONStream(r io.Reader, fn func(jsonmessage.JSONMessage)) error {
	dec := json.NewDecoder(r)
	for {
		var m jsonmessage.JSONMessage
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if m.Error != nil {
			return m.Error
		}
		if fn != nil {
			fn(m)
		}
	}
}
