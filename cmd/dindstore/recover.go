package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/dindstore/dindstore/cache"
	"github.com/urfave/cli/v2"
)

var recoverCommand = &cli.Command{
	Name:  "recover",
	Usage: "repair what crashed or killed holders left behind (run at boot, before any runner)",
	Description: "Rebuilds the picture from disk alone: records, mounts, loop devices, lock files and\n" +
		"owner records. A cache with a live holder is kept as it is; an unheld cache loses the\n" +
		"mounts, loop devices and owner record a dead holder left; data whose record was never\n" +
		"written (a create that died) is removed. No cache's data is removed because its holder died.",
	Flags: []cli.Flag{
		&cli.BoolFlag{Name: "dry-run", Usage: "say what would be done, change nothing"},
		&cli.BoolFlag{Name: "json", Usage: "print the findings as JSON"},
	},
	Action: func(c *cli.Context) error {
		return findingsAction(c, (*cache.Root).Recover)
	},
}

var gcCommand = &cli.Command{
	Name:  "gc",
	Usage: "remove what dindstore left behind, and nothing it did not make",
	Description: "Everything recover repairs, plus records whose image is gone and dindstore's own loop\n" +
		"devices on image files of this root that no cache has anymore. A loop device, mount or\n" +
		"file that dindstore did not make is never touched.",
	Flags: recoverCommand.Flags,
	Action: func(c *cli.Context) error {
		return findingsAction(c, (*cache.Root).GC)
	},
}

// findingsAction runs recover or gc and prints what it found and did.
func findingsAction(c *cli.Context, run func(*cache.Root, context.Context, bool) ([]cache.Finding, error)) error {
	if c.NArg() != 0 {
		return fmt.Errorf("%w: %s takes no arguments", errUsage, c.Command.Name)
	}
	root, err := openRoot(c, true)
	if err != nil {
		return err
	}
	findings, err := run(root, c.Context, c.Bool("dry-run"))
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return writeJSONList(c.App.Writer, findings)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tFOUND\tPATH\tACTION\tNOTE")
	failed := 0
	for _, f := range findings {
		note := f.Note
		if f.Err != nil {
			note, failed = "FAILED: "+f.Err.Error(), failed+1
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", dash(f.Key), f.What, f.Path, f.Action, dash(note))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d repairs failed; see the NOTE column", failed)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
