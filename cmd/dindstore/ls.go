package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/dindstore/dindstore/cache"
	"github.com/docker/go-units"
	"github.com/urfave/cli/v2"
)

var lsCommand = &cli.Command{
	Name:    "ls",
	Aliases: []string{"list"},
	Usage:   "list caches with their sizes and state",
	Flags: []cli.Flag{
		&cli.BoolFlag{Name: "json", Usage: "print JSON (exact bytes, RFC 3339 times)"},
	},
	Action: func(c *cli.Context) error {
		if c.NArg() != 0 {
			return fmt.Errorf("%w: ls takes no arguments", errUsage)
		}
		root, err := openRoot(c, false)
		var entries []cache.Entry
		switch {
		case errors.Is(err, cache.ErrNotFound):
			// no root yet: no caches
		case err != nil:
			return err
		default:
			if entries, err = root.List(c.Context); err != nil {
				return err
			}
		}
		if c.Bool("json") {
			return writeJSONList(c.App.Writer, entries)
		}
		return writeTable(c.App.Writer, entries)
	},
}

// writeJSONList prints a list as indented JSON; an empty list is [] not null.
func writeJSONList[T any](w io.Writer, list []T) error {
	if list == nil {
		list = []T{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(list)
}

func writeTable(w io.Writer, entries []cache.Entry) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tKIND\tCAP\tAPPARENT\tALLOCATED\tSTATE\tHOLDER\tLAST USED")
	for _, e := range entries {
		holder := "-"
		if e.HolderPID > 0 {
			holder = strconv.Itoa(e.HolderPID)
		}
		state := e.State
		if e.Error != "" {
			state = "error: " + e.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Key, e.Kind, human(e.CapBytes),
			human(e.ApparentBytes), human(e.AllocatedBytes), state, holder, ago(e.LastUsed))
	}
	return tw.Flush()
}

func human(n int64) string {
	if n == 0 {
		return "-"
	}
	return units.BytesSize(float64(n))
}

func ago(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return units.HumanDuration(time.Since(*t)) + " ago"
}
