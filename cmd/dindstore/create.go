package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/dindstore/dindstore/cache"
	"github.com/dindstore/dindstore/volumes"
	"github.com/docker/go-units"
	"github.com/urfave/cli/v2"
)

// createFlags are shared by every command that creates a cache when missing.
var createFlags = []cli.Flag{
	&cli.StringFlag{Name: "kind", Value: "auto", Usage: "backing kind: auto, loop, dir or vfs"},
	&cli.StringFlag{Name: "size", Value: "20GiB", Usage: "size cap of a loop cache (GiB, G, MiB, or bytes)"},
	&cli.StringFlag{Name: "fs", Value: "ext4", Usage: "filesystem of a loop cache: ext4 or xfs"},
	&cli.StringFlag{Name: "from", Usage: "when KEY is missing, make it a private clone of this warm cache (or cold, if that is missing)"},
}

var createCommand = &cli.Command{
	Name:      "create",
	Usage:     "create a cache (idempotent for the same options)",
	ArgsUsage: "KEY",
	Flags:     createFlags,
	Action: func(c *cli.Context) error {
		key, err := oneKey(c)
		if err != nil {
			return err
		}
		_, err = ensureCache(c, key, true)
		return err
	},
}

// ensureCache creates the cache key from the create flags when it is
// missing (checking that given flags agree with it when it exists) and
// returns the opened root. verbose reports on stdout what was done; without
// it only a creation is reported, on stderr (stdout belongs to the command
// that run starts).
func ensureCache(c *cli.Context, key string, verbose bool) (*cache.Root, error) {
	root, _, err := ensureCacheCreated(c, key, verbose)
	return root, err
}

// dropUnused removes the cache key that this command created (created)
// when the command failed (err) before the cache was ever used — refused by
// admission, say: a refused command leaves no cache behind. It returns err.
func dropUnused(c *cli.Context, root *cache.Root, key string, created bool, err error) error {
	if !created || err == nil {
		return err
	}
	switch removed, rerr := root.RemoveUnused(context.WithoutCancel(c.Context), key); {
	case rerr != nil:
		fmt.Fprintf(c.App.ErrWriter, "dindstore: remove cache %s, made by this command and never used: %v\n", key, rerr)
	case removed:
		fmt.Fprintf(c.App.ErrWriter, "%s: removed again: made by this command, never used\n", key)
	}
	return err
}

// ensureCacheCreated is ensureCache that also says whether it created the
// cache.
func ensureCacheCreated(c *cli.Context, key string, verbose bool) (*cache.Root, bool, error) {
	spec, err := specFromFlags(c)
	if err != nil {
		return nil, false, err
	}
	root, err := openRoot(c, true)
	if err != nil {
		return nil, false, err
	}
	var rec *cache.Record
	var created bool
	if warm := c.String("from"); warm != "" {
		rec, err = ensureFromWarm(c, root, key, warm, spec)
	} else {
		rec, created, err = root.Create(c.Context, key, spec)
	}
	if err != nil {
		return nil, false, err
	}
	switch {
	case verbose:
		reportCreate(c.App.Writer, c.App.ErrWriter, rec, created)
	case created:
		reportCreate(c.App.ErrWriter, c.App.ErrWriter, rec, created)
	}
	if created && rec.Kind == volumes.Loop {
		warnOvercommit(c.App.ErrWriter, root)
	}
	return root, created, nil
}

// warnOvercommit says when the caps of all loop caches exceed the host
// filesystem: allowed while they are idle, refused at admission in use.
func warnOvercommit(w io.Writer, root *cache.Root) {
	caps, host, err := root.TotalCaps()
	if err == nil && caps > host {
		fmt.Fprintf(w, "WARNING: the caps of all loop caches (%s) exceed the host filesystem (%s): fine while they "+
			"are idle; a cache whose use would not fit is refused at admission (exit 76)\n",
			units.BytesSize(float64(caps)), units.BytesSize(float64(host)))
	}
}

// specFromFlags reads the create flags. Only flags given on the command line
// are compared with an existing cache; defaults apply to new ones.
func specFromFlags(c *cli.Context) (cache.Spec, error) {
	var spec cache.Spec
	var err error
	if c.IsSet("kind") {
		if spec.Kind, err = volumes.ParseKind(c.String("kind")); err != nil {
			return spec, err
		}
	}
	if c.IsSet("size") {
		if spec.Size, err = cache.ParseSize(c.String("size")); err != nil {
			return spec, err
		}
	}
	if c.IsSet("fs") {
		if spec.FS, err = volumes.ParseFS(c.String("fs")); err != nil {
			return spec, err
		}
	}
	return spec, spec.Validate()
}

// reportCreate says what create did, and warns loudly about a vfs fallback.
func reportCreate(out, warn io.Writer, rec *cache.Record, created bool) {
	verb := "exists"
	if created {
		verb = "created"
	}
	desc := string(rec.Kind)
	if rec.Kind == volumes.Loop {
		desc = fmt.Sprintf("loop, %s, %s cap", rec.FS, units.BytesSize(float64(rec.CapBytes)))
	}
	fmt.Fprintf(out, "%s %s (%s)\n", rec.Key, verb, desc)
	if created && len(rec.KindReason) > 0 {
		fmt.Fprintf(warn, "WARNING: --kind auto could not use loop for cache %s and chose %s. Why: %s\n",
			rec.Key, rec.Kind, strings.Join(rec.KindReason, "; "))
	}
	if created && rec.Kind == volumes.VFS {
		fmt.Fprintf(warn, "WARNING: cache %s is vfs: the inner dockerd must run with --storage-driver vfs, "+
			"which copies every layer in full (slow, disk-hungry)\n", rec.Key)
	}
}

// ensureFromWarm makes key a clone of warm when it is missing, and says
// what happened on stderr: a hit (cloned) or a miss (warm missing: cold).
func ensureFromWarm(c *cli.Context, root *cache.Root, key, warm string, spec cache.Spec) (*cache.Record, error) {
	existed := root.Exists(key)
	rec, hit, err := root.FromWarm(c.Context, key, warm, spec)
	switch {
	case err != nil || existed:
	case hit:
		fmt.Fprintf(c.App.ErrWriter, "%s cloned from %s (generation %d, %s)\n", key, warm, rec.Generation, rec.CloneMethod)
	default:
		fmt.Fprintf(c.App.ErrWriter, "%s: warm cache %s does not exist (a miss): %s starts cold\n", key, warm, key)
	}
	return rec, err
}
