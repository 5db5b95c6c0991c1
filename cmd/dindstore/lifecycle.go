package main

import (
	"fmt"

	"github.com/dindstore/dindstore/cache"
	"github.com/urfave/cli/v2"
)

var growCommand = &cli.Command{
	Name:      "grow",
	Usage:     "raise the size cap of a loop cache (shrinking is refused)",
	ArgsUsage: "KEY",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "size", Required: true, Usage: "new size cap (GiB, G, MiB, or bytes)"},
	},
	Action: func(c *cli.Context) error {
		key, err := oneKey(c)
		if err != nil {
			return err
		}
		size, err := cache.ParseSize(c.String("size"))
		if err != nil {
			return err
		}
		root, err := openRoot(c, false)
		if err != nil {
			return err
		}
		if err := root.Grow(c.Context, key, size); err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "%s grown to %s\n", key, human(size))
		return nil
	},
}

var rmCommand = &cli.Command{
	Name:      "rm",
	Usage:     "remove a cache and its data (refused while in use)",
	ArgsUsage: "KEY",
	Flags: []cli.Flag{&cli.BoolFlag{Name: "force",
		Usage: "remove a pinned cache too (a Kubernetes volume or snapshot: delete its claim or VolumeSnapshot instead)"}},
	Action: func(c *cli.Context) error {
		key, root, err := keyAndRoot(c)
		if err != nil {
			return err
		}
		if rec, err := root.Record(key); err == nil && rec.Pinned != "" && !c.Bool("force") {
			return fmt.Errorf("%w: %s is pinned by %s: delete that instead, or pass --force", cache.ErrPinned, key, rec.Pinned)
		}
		if err := root.Remove(c.Context, key); err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "%s removed\n", key)
		return nil
	},
}

var repairCommand = &cli.Command{
	Name:      "repair",
	Usage:     "check and repair a cache's filesystem (e2fsck -f -y, xfs_repair) and clear its damaged mark",
	ArgsUsage: "KEY",
	Action: func(c *cli.Context) error {
		key, root, err := keyAndRoot(c)
		if err != nil {
			return err
		}
		out, err := root.Repair(c.Context, key)
		fmt.Fprint(c.App.Writer, out)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "%s repaired\n", key)
		return nil
	},
}
