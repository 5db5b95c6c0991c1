package main

import (
	"fmt"
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
		spec, err := specFromFlags(c)
		if err != nil {
			return err
		}
		root, err := openRoot(c, true)
		if err != nil {
			return err
		}
		rec, created, err := root.Create(c.Context, key, spec)
		if err != nil {
			return err
		}
		reportCreate(c, rec, created)
		return nil
	},
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
func reportCreate(c *cli.Context, rec *cache.Record, created bool) {
	verb := "exists"
	if created {
		verb = "created"
	}
	desc := string(rec.Kind)
	if rec.Kind == volumes.Loop {
		desc = fmt.Sprintf("loop, %s, %s cap", rec.FS, units.BytesSize(float64(rec.CapBytes)))
	}
	fmt.Fprintf(c.App.Writer, "%s %s (%s)\n", rec.Key, verb, desc)
	if created && rec.Kind == volumes.VFS {
		fmt.Fprintf(c.App.ErrWriter, "WARNING: cache %s fell back to vfs: the inner dockerd must run with --storage-driver vfs, "+
			"which copies every layer in full (slow, disk-hungry). Why: %s\n", rec.Key, strings.Join(rec.KindReason, "; "))
	}
}
