package main

import (
	"fmt"
	"os"

	"github.com/dindstore/dindstore/cache"
	"github.com/dindstore/dindstore/transfer"
	"github.com/dindstore/dindstore/volumes"
	"github.com/urfave/cli/v2"
	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
	"oras.land/oras-go/v2/registry/remote/retry"
)

// registryFlags are push's and pull's.
var registryFlags = []cli.Flag{
	&cli.BoolFlag{Name: "plain-http", Usage: "talk to the registry over plain HTTP (a local registry)"},
	&cli.IntFlag{Name: "parallel", Value: transfer.Parallel, Usage: "chunks moved at once"},
	&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
}

var pushCommand = &cli.Command{
	Name:      "push",
	Usage:     "push an idle loop cache's image to an OCI registry, as chunks (only those the registry lacks are sent)",
	ArgsUsage: "[--plain-http] KEY REGISTRY/REPOSITORY:TAG  (flags before the arguments)",
	Description: "The cache must be idle and cleanly released; it is held (uses wait) while it is read.\n" +
		"Credentials come from the Docker config (DOCKER_CONFIG, ~/.docker/config.json, credential helpers).\n" +
		"The artifact's format: docs/fleet.md.",
	Flags: registryFlags,
	Action: func(c *cli.Context) error {
		if c.NArg() != 2 {
			return fmt.Errorf("%w: push takes KEY and a reference (registry/repository:tag)", errUsage)
		}
		repo, ref, err := repository(c, c.Args().Get(1))
		if err != nil {
			return err
		}
		root, err := openRoot(c, false)
		if err != nil {
			return err
		}
		var res transfer.PushResult
		err = root.Export(c.Context, c.Args().Get(0), func(image *os.File, info cache.ExportInfo) error {
			cfg := transfer.Config{FS: string(info.FS), BlockSize: info.BlockSize, FSUUID: info.FSUUID,
				ImageStore: info.ImageStore, Generation: info.Generation}
			res, err = transfer.Push(c.Context, repo, image, cfg, ref.Reference, c.Int("parallel"))
			return err
		})
		if err != nil {
			return fmt.Errorf("push %s to %s: %w", c.Args().Get(0), ref, err)
		}
		if c.Bool("json") {
			return writeJSON(c.App.Writer, res)
		}
		_, err = fmt.Fprintf(c.App.Writer, "%s@%s: %d chunks sent (%s), %d already there\n", ref, res.Manifest.Digest,
			res.Sent, human(res.SentBytes), res.Skipped)
		return err
	},
}

var pullCommand = &cli.Command{
	Name:      "pull",
	Usage:     "make a new loop cache from an image pushed to an OCI registry",
	ArgsUsage: "[--plain-http] REGISTRY/REPOSITORY:TAG KEY  (flags before the arguments)",
	Description: "Every chunk is checked by its digest, the whole image by the artifact's; the cache\n" +
		"exists only once all of it is in and its filesystem checked. KEY must not exist.",
	Flags: registryFlags,
	Action: func(c *cli.Context) error {
		if c.NArg() != 2 {
			return fmt.Errorf("%w: pull takes a reference (registry/repository:tag) and KEY", errUsage)
		}
		repo, ref, err := repository(c, c.Args().Get(0))
		if err != nil {
			return err
		}
		root, err := openRoot(c, true)
		if err != nil {
			return err
		}
		var res transfer.PullResult
		_, err = root.Import(c.Context, c.Args().Get(1), func(dst *os.File) (cache.ImportInfo, error) {
			res, err = transfer.Pull(c.Context, repo, ref.Reference, dst, nil, c.Int("parallel"))
			return cache.ImportInfo{FS: volumes.FS(res.Config.FS), ImageStore: res.Config.ImageStore,
				Generation: res.Config.Generation}, err
		})
		if err != nil {
			return fmt.Errorf("pull %s into %s: %w", ref, c.Args().Get(1), err)
		}
		if c.Bool("json") {
			return writeJSON(c.App.Writer, res)
		}
		_, err = fmt.Fprintf(c.App.Writer, "%s: %d chunks fetched (%s) from %s@%s\n", c.Args().Get(1), res.Fetched,
			human(res.FetchedBytes), ref, res.Manifest.Digest)
		return err
	},
}

// repository opens the repository of a reference, which must name a tag
// or digest, with the Docker config's credentials and retries.
func repository(c *cli.Context, s string) (*remote.Repository, registry.Reference, error) {
	ref, err := registry.ParseReference(s)
	if err == nil && ref.Reference == "" {
		err = fmt.Errorf("no tag or digest")
	}
	if err != nil {
		return nil, ref, fmt.Errorf("%w: reference %q: %w (want registry/repository:tag)", errUsage, shorten(s), err)
	}
	repo, err := remote.NewRepository(ref.Registry + "/" + ref.Repository)
	if err != nil {
		return nil, ref, fmt.Errorf("%w: %w", errUsage, err)
	}
	repo.PlainHTTP = c.Bool("plain-http")
	store, err := credentials.NewStoreFromDocker(credentials.StoreOptions{})
	if err != nil {
		return nil, ref, fmt.Errorf("read the Docker config's credentials: %w", err)
	}
	repo.Client = &auth.Client{Client: retry.DefaultClient, Cache: auth.NewCache(), Credential: credentials.Credential(store)}
	return repo, ref, nil
}
