package main

import (
	"fmt"

	"github.com/dindstore/dindstore/cache"
	"github.com/dindstore/dindstore/volumes"
	"github.com/urfave/cli/v2"
)

var cloneCommand = &cli.Command{
	Name:      "clone",
	Usage:     "make DST a private copy of the quiet cache SRC (reflink where the host has it, else a sparse copy)",
	ArgsUsage: "SRC DST",
	Action: func(c *cli.Context) error {
		if c.NArg() != 2 {
			return fmt.Errorf("%w: clone takes SRC and DST", errUsage)
		}
		src, dst := c.Args().Get(0), c.Args().Get(1)
		for _, k := range []string{src, dst} {
			if err := cache.ValidateKey(k); err != nil {
				return err
			}
		}
		root, err := openRoot(c, false)
		if err != nil {
			return err
		}
		res, err := root.Clone(c.Context, src, dst)
		if err != nil {
			return err
		}
		note := ""
		if res.Method != volumes.CloneReflink {
			note = " (O(data): the host filesystem has no reflink)"
		}
		_, err = fmt.Fprintf(c.App.Writer, "%s cloned from %s by %s in %s%s\n", dst, src, res.Method, res.Duration.Round(1e6), note)
		return err
	},
}

var commitCommand = &cli.Command{
	Name:      "commit",
	Usage:     "make the idle clone KEY the next generation of the warm cache it was cloned from",
	ArgsUsage: "KEY",
	Action: func(c *cli.Context) error {
		key, root, err := keyAndRoot(c)
		if err != nil {
			return err
		}
		return promote(c, root, key)
	},
}

// promote commits a clone and says so.
func promote(c *cli.Context, root *cache.Root, key string) error {
	if err := root.Promote(c.Context, key); err != nil {
		return err
	}
	fmt.Fprintf(c.App.ErrWriter, "%s committed as the next generation of its warm cache\n", key)
	return nil
}
