package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/dindstore/dindstore/cache"
	"github.com/urfave/cli/v2"
)

// pruneFlags may also come from the config file (--config), under the same
// names: older-than = "72h", max-total = "200GiB", keep-free = "20%", ...
var pruneFlags = []cli.Flag{
	&cli.StringFlag{Name: "older-than", Usage: "remove caches idle for longer (72h, 3d, 2w)"},
	&cli.StringFlag{Name: "max-total", Usage: "keep what all caches allocate on the host under this (200GiB)"},
	&cli.StringFlag{Name: "keep-free", Usage: "keep this share of the host filesystem free (20%)"},
	&cli.StringFlag{Name: "keep-free-inodes", Usage: "keep this share of the host's inodes free (5%)"},
	&cli.IntFlag{Name: "max-count", Value: -1, Usage: "keep at most this many caches (-1: no limit)"},
}

var pruneCommand = &cli.Command{
	Name:  "prune",
	Usage: "remove idle caches by policy, least recently used first (never one in use)",
	Description: "Policies combine: a cache goes when any of them wants it gone, and the count, total\n" +
		"and floors are checked again after every removal. A cache in use, or whose lock cannot\n" +
		"be taken at once, is never touched. The policy may live in the config file (--config).",
	Flags: append(append([]cli.Flag{}, pruneFlags...),
		&cli.BoolFlag{Name: "dry-run", Usage: "print what would go and why, remove nothing"},
		&cli.BoolFlag{Name: "include-warm", Usage: "let the policy remove warm caches too (by default the newest generation of each stays)"},
		&cli.BoolFlag{Name: "json", Usage: "print the removals as JSON"},
	),
	Action: func(c *cli.Context) error {
		if c.NArg() != 0 {
			return fmt.Errorf("%w: prune takes no arguments", errUsage)
		}
		p, err := policyFromFlags(c)
		if err != nil {
			return err
		}
		root, err := openRoot(c, false)
		if err != nil {
			return err
		}
		removals, err := root.Prune(c.Context, p, c.Bool("dry-run"))
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return writeJSONList(c.App.Writer, removals)
		}
		return writeRemovals(c, removals)
	},
}

// policyFromFlags reads and checks the policy before anything is touched.
func policyFromFlags(c *cli.Context) (cache.Policy, error) {
	p := cache.Policy{MaxCount: c.Int("max-count"), IncludeWarm: c.Bool("include-warm")}
	var err error
	if s := c.String("older-than"); s != "" {
		if p.OlderThan, err = cache.ParseAge(s); err != nil {
			return p, err
		}
	}
	if s := c.String("max-total"); s != "" {
		if p.MaxTotal, err = cache.ParseSize(s); err != nil {
			return p, err
		}
	}
	if s := c.String("keep-free"); s != "" {
		if p.KeepFree, err = cache.ParsePercent(s); err != nil {
			return p, err
		}
	}
	if s := c.String("keep-free-inodes"); s != "" {
		if p.KeepFreeInodes, err = cache.ParsePercent(s); err != nil {
			return p, err
		}
	}
	return p, p.Validate()
}

func writeRemovals(c *cli.Context, removals []cache.Removal) error {
	verb := "removed"
	if c.Bool("dry-run") {
		verb = "would remove"
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tLAST USED\tFREES\tWHY\tRESULT")
	var freed int64
	for _, rm := range removals {
		result := verb
		if rm.Err != nil {
			result = "kept: " + rm.Err.Error()
		} else {
			freed += rm.FreesBytes
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", rm.Key, ago(&rm.LastUsed), human(rm.FreesBytes), rm.Reason, result)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(c.App.Writer, "%s %d caches, %s\n", verb, len(removals), human(freed))
	return err
}
