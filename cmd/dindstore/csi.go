package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/dindstore/dindstore/cache"
	"github.com/dindstore/dindstore/csi"
	"github.com/dindstore/dindstore/metrics"
	"github.com/dindstore/dindstore/transfer"
	"github.com/dindstore/dindstore/volumes"
	"github.com/urfave/cli/v2"
	"golang.org/x/sync/errgroup"
)

var csiCommand = &cli.Command{
	Name:  "csi",
	Usage: "serve the Kubernetes CSI node plugin: each pod's inline volume gets a capped, exclusive cache",
	Description: "Serves CSI's Identity and Node services on --endpoint for inline ephemeral volumes\n" +
		"(see docs/kubernetes.md). Each publication holds its cache's lease in this process; when\n" +
		"the plugin stops, the volumes stay bound for their pods and the next start takes them over.\n" +
		"At start and every --gc-interval, publications whose pods are gone are cleaned up and\n" +
		"recover and gc run over the root.",
	Flags: append([]cli.Flag{
		&cli.StringFlag{Name: "endpoint", Value: "unix:///csi/csi.sock", Usage: "the CSI socket"},
		&cli.StringFlag{Name: "node-id", Usage: "this node's name, as the kubelet knows it (required)"},
		&cli.StringFlag{Name: "driver-name", Value: csi.DefaultDriverName, Usage: "the CSI driver's name"},
		&cli.StringFlag{Name: "default-size", Value: "20Gi", Usage: "cap of a volume that sets no size"},
		&cli.StringFlag{Name: "max-size", Value: "200Gi", Usage: "largest cap a volume may ask"},
		&cli.StringSliceFlag{Name: "kind", Value: cli.NewStringSlice("loop"), Usage: "kinds a volume may ask, the first the default (loop is the only capped one)"},
		&cli.StringSliceFlag{Name: "warm-key", Usage: "a warm key volumes may clone (attribute from); repeat it; by default any key but the plugin's own volumes'"},
		&cli.BoolFlag{Name: "allow-commit", Usage: "let a volume commit its clone back to its warm key (attribute commit)"},
		&cli.Int64Flag{Name: "max-volumes", Usage: "volumes this node takes at most, for the scheduler (0: no limit)"},
		&cli.StringFlag{Name: "keep-free", Usage: "admission floor: share of the host filesystem the caches in use may not claim (default 5%)"},
		&cli.DurationFlag{Name: "gc-interval", Value: 10 * time.Minute, Usage: "how often publications of gone pods are cleaned up"},
		&cli.StringFlag{Name: "metrics-addr", Usage: "also serve the root's Prometheus metrics (as `dindstore serve`) on this address"},
		&cli.StringFlag{Name: "registration-dir", Usage: "register with the kubelet's plugin watcher through this directory (its plugins_registry) instead of node-driver-registrar"},
		&cli.StringFlag{Name: "kubelet-registration-path", Usage: "the CSI socket's path as the kubelet sees it (default: --endpoint's path)"},
		&cli.StringSliceFlag{Name: "warm-source", Usage: "KEY=REGISTRY/REPOSITORY:TAG: keep warm key KEY pulled from a registry (dindstore push made it); repeat it"},
		&cli.DurationFlag{Name: "refresh-interval", Value: 10 * time.Minute, Usage: "how often the warm sources are pulled again (only changed chunks travel; 0: at start only)"},
		&cli.BoolFlag{Name: "push-commits", Usage: "push a warm source's generation a volume committed (needs --allow-commit)"},
	}, registryAccessFlags...),
	Action: csiAction,
}

// csiAction starts the plugin: it takes over what an earlier run left,
// then serves until SIGTERM or SIGINT.
func csiAction(c *cli.Context) error {
	if c.NArg() != 0 {
		return fmt.Errorf("%w: csi takes no arguments", errUsage)
	}
	cfg, err := csiConfig(c)
	if err != nil {
		return err
	}
	root, err := openRoot(c, true)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log.SetFlags(log.LstdFlags | log.LUTC)
	log.SetOutput(c.App.ErrWriter)
	hyd, err := hydrator(c, root)
	if err != nil {
		return err
	}
	if hyd != nil {
		cfg.Warming = hyd.Warming
		if c.Bool("push-commits") {
			cfg.Committed = hyd.Committed
		}
	}
	d := csi.New(root, cfg)
	if err := d.Start(ctx); err != nil {
		log.Printf("start-up garbage collection: %v", err)
	}
	return serveCSI(ctx, c, d, root, cfg.DriverName, hyd)
}

// serveCSI serves the plugin, and its registration and metrics when
// asked, until ctx ends or one of them fails.
func serveCSI(ctx context.Context, c *cli.Context, d *csi.Driver, root *cache.Root, name string, hyd *transfer.Hydrator) error {
	endpoint := c.String("endpoint")
	g, ctx := errgroup.WithContext(ctx)
	if addr := c.String("metrics-addr"); addr != "" {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", addr, err)
		}
		g.Go(func() error { return metrics.Serve(ctx, root, l) })
	}
	g.Go(func() error { return csi.Serve(ctx, endpoint, d) })
	g.Go(func() error { d.Run(ctx, c.Duration("gc-interval")); return nil })
	if hyd != nil {
		g.Go(func() error { hyd.Run(ctx, c.Duration("refresh-interval")); return nil })
	}
	if dir := c.String("registration-dir"); dir != "" {
		kubeletPath := c.String("kubelet-registration-path")
		if kubeletPath == "" {
			kubeletPath, _ = csi.SocketPath(endpoint)
		}
		g.Go(func() error { return csi.Register(ctx, dir, name, kubeletPath) })
	}
	log.Printf("serving %s on %s for node %s", name, endpoint, c.String("node-id"))
	return g.Wait()
}

// hydrator makes the keeper of --warm-source keys (nil without any),
// checking every source before anything starts.
func hydrator(c *cli.Context, root *cache.Root) (*transfer.Hydrator, error) {
	if c.Bool("push-commits") && !c.Bool("allow-commit") {
		return nil, fmt.Errorf("%w: --push-commits pushes what volumes commit: it needs --allow-commit", errUsage)
	}
	var sources []transfer.WarmSource
	seen := map[string]bool{}
	for _, v := range c.StringSlice("warm-source") {
		key, name, ok := strings.Cut(v, "=")
		if !ok {
			return nil, fmt.Errorf("%w: --warm-source %q: want KEY=REGISTRY/REPOSITORY:TAG", errUsage, shorten(v))
		}
		if err := csi.CheckWarmKey(key, nil); err != nil {
			return nil, fmt.Errorf("%w: --warm-source %s: %w", errUsage, shorten(key), err)
		}
		if seen[key] {
			return nil, fmt.Errorf("%w: --warm-source names %s twice: a key has one source", errUsage, key)
		}
		seen[key] = true
		repo, ref, err := repository(c, name)
		if err != nil {
			return nil, fmt.Errorf("--warm-source %s: %w", key, err)
		}
		sources = append(sources, transfer.WarmSource{Key: key, Name: ref.String(), Tag: ref.Reference, Repo: repo})
	}
	if len(sources) == 0 {
		return nil, nil
	}
	return transfer.NewHydrator(root, sources, c.Int("parallel"), log.Printf), nil
}

// csiConfig reads and checks the plugin's flags.
func csiConfig(c *cli.Context) (csi.Config, error) {
	cfg := csi.Config{DriverName: c.String("driver-name"), NodeID: c.String("node-id"), Version: buildVersion(),
		MaxVolumes: c.Int64("max-volumes")}
	if cfg.NodeID == "" {
		cfg.NodeID, _ = os.Hostname()
	}
	if cfg.DriverName == "" {
		return cfg, fmt.Errorf("%w: --driver-name is empty: the CSIDriver object names the plugin", errUsage)
	}
	if _, err := csi.SocketPath(c.String("endpoint")); err != nil {
		return cfg, fmt.Errorf("%w: --endpoint: %w", errUsage, err)
	}
	lim := csi.Limits{AllowCommit: c.Bool("allow-commit"), WarmKeys: c.StringSlice("warm-key")}
	for _, k := range lim.WarmKeys {
		if err := cache.ValidateKey(k); err != nil {
			return cfg, fmt.Errorf("%w: --warm-key: %w", errUsage, err)
		}
	}
	var err error
	if lim.MaxSize, err = csi.ParseSize(c.String("max-size"), cache.MaxSize); err != nil {
		return cfg, fmt.Errorf("%w: --max-size: %w", errUsage, err)
	}
	if lim.DefaultSize, err = csi.ParseSize(c.String("default-size"), lim.MaxSize); err != nil {
		return cfg, fmt.Errorf("%w: --default-size: %w", errUsage, err)
	}
	for _, k := range c.StringSlice("kind") {
		kind, err := volumes.ParseKind(k)
		if err != nil || kind == volumes.Auto {
			return cfg, fmt.Errorf("%w: --kind %q: want loop, dir or vfs", errUsage, k)
		}
		lim.Kinds = append(lim.Kinds, kind)
	}
	cfg.Limits = lim
	cfg.Acquire.KeepFree, err = keepFreeFraction(c.String("keep-free"))
	return cfg, err
}

// buildVersion is the module version the binary was built from ("dev" for
// a build from a work tree).
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
