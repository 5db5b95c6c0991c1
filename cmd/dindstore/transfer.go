package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/dindstore/dindstore/cache"
	"github.com/dindstore/dindstore/transfer"
	"github.com/urfave/cli/v2"
	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
	"oras.land/oras-go/v2/registry/remote/retry"
)

// registryAccessFlags say how to reach a registry (push, pull, warm).
var registryAccessFlags = []cli.Flag{
	&cli.BoolFlag{Name: "plain-http", Usage: "talk to the registry over plain HTTP (a local registry)"},
	&cli.StringFlag{Name: "ca-file", Usage: "PEM file of the CA that signed the registry's certificate (beside the system's)"},
	&cli.IntFlag{Name: "parallel", Value: transfer.Parallel, Usage: "chunks moved at once (1 to 64)"},
}

// registryFlags are push's and pull's.
var registryFlags = append(append([]cli.Flag{}, registryAccessFlags...),
	&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
	&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "show no progress"},
)

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
		key := c.Args().Get(0)
		repo, ref, err := repository(c, c.Args().Get(1))
		if err != nil {
			return err
		}
		root, err := openRoot(c, false)
		if err != nil {
			return err
		}
		res, err := transfer.PushCache(c.Context, root, key, repo, ref.Reference, ref.String(), c.Int("parallel"))
		if err != nil {
			return fmt.Errorf("push %s to %s: %w", key, ref, err)
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
	Usage:     "make a loop cache, or its next generation, from an image pushed to an OCI registry",
	ArgsUsage: "[--plain-http] REGISTRY/REPOSITORY:TAG KEY  (flags before the arguments)",
	Description: "Every chunk is checked by its digest, the whole image by the artifact's; the cache (or\n" +
		"its new generation) exists only once all of it is in and its filesystem checked. Chunks\n" +
		"the key's current generation holds are taken from disk; a pull cut short resumes.",
	Flags: registryFlags,
	Action: func(c *cli.Context) error {
		if c.NArg() != 2 {
			return fmt.Errorf("%w: pull takes a reference (registry/repository:tag) and KEY", errUsage)
		}
		key := c.Args().Get(1)
		if err := cache.ValidateKey(key); err != nil {
			return err
		}
		root, err := openRoot(c, true)
		if err != nil {
			return err
		}
		res, err := pullCache(c, root, c.Args().Get(0), key)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return writeJSON(c.App.Writer, res)
		}
		return printPull(c.App.Writer, key, res)
	},
}

// pullCache pulls ref into key of root, with progress on stderr.
func pullCache(c *cli.Context, root *cache.Root, name, key string) (transfer.CachePull, error) {
	repo, ref, err := repository(c, name)
	if err != nil {
		return transfer.CachePull{}, err
	}
	prog := newProgress(os.Stderr, c.Bool("quiet") || c.Bool("json"))
	defer prog.wait()
	var s *step
	opts := transfer.PullOptions{Parallel: c.Int("parallel"), Name: ref.String(), Progress: func(n, total int64) {
		if n < 0 {
			s = prog.step("pull "+ref.String(), total, true)
		} else {
			s.add(n)
		}
	}}
	res, err := transfer.PullCache(c.Context, root, repo, ref.Reference, key, opts)
	if s != nil {
		s.done(err, true)
	}
	if err != nil {
		return res, fmt.Errorf("pull %s into %s: %w", ref, key, err)
	}
	return res, nil
}

// printPull says what a pull did, in a line.
func printPull(w io.Writer, key string, res transfer.CachePull) error {
	if res.Unchanged {
		_, err := fmt.Fprintf(w, "%s: already %s\n", key, res.Record.Pulled)
		return err
	}
	_, err := fmt.Fprintf(w, "%s: generation %d from %s: %d chunks fetched (%s), %d from disk, %d resumed\n", key,
		res.Record.Generation, res.Record.Pulled, res.Fetched, human(res.FetchedBytes), res.Local, res.Resumed)
	return err
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
	if n := c.Int("parallel"); n < 1 || n > 64 {
		return nil, ref, fmt.Errorf("%w: --parallel %d: want 1 to 64", errUsage, n)
	}
	store, err := credentials.NewStoreFromDocker(credentials.StoreOptions{})
	if err != nil {
		return nil, ref, fmt.Errorf("read the Docker config's credentials: %w", err)
	}
	hc, err := registryHTTP(c.String("ca-file"))
	if err != nil {
		return nil, ref, err
	}
	repo.Client = &auth.Client{Client: hc, Cache: auth.NewCache(), Credential: credentials.Credential(store)}
	return repo, ref, nil
}

// registryHTTP is the HTTP client for a registry: retries with backoff
// (oras-go's), and the CA in caFile trusted beside the system's.
func registryHTTP(caFile string) (*http.Client, error) {
	if caFile == "" {
		return retry.DefaultClient, nil
	}
	pem, err := readConfig(caFile) // a regular file of at most 1 MiB
	if err != nil {
		return nil, fmt.Errorf("%w: --ca-file: %w", errUsage, err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: --ca-file %s holds no PEM certificate", errUsage, caFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: retry.NewTransport(tr)}, nil
}
