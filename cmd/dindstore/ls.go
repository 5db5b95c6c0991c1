package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dindstore/dindstore/cache"
	"github.com/docker/go-units"
	"github.com/urfave/cli/v2"
)

var listFlags = []cli.Flag{
	&cli.BoolFlag{Name: "json", Usage: "print JSON (exact bytes, RFC 3339 times)"},
	&cli.StringFlag{Name: "sort", Value: "key", Usage: "sort by: " + strings.Join(cache.SortColumns(), ", ")},
	&cli.BoolFlag{Name: "reverse", Aliases: []string{"r"}, Usage: "sort in descending order"},
	&cli.BoolFlag{Name: "deep", Usage: "also walk dir and vfs caches for their disk usage (slow)"},
}

var lsCommand = &cli.Command{
	Name:    "ls",
	Aliases: []string{"list"},
	Usage:   "list caches with their sizes and state (--json: a list of caches)",
	Flags:   listFlags,
	Action:  func(c *cli.Context) error { return listAction(c, false) },
}

var dfCommand = &cli.Command{
	Name:   "df",
	Usage:  "like ls; --json adds the totals and the host filesystem's free room",
	Flags:  listFlags,
	Action: func(c *cli.Context) error { return listAction(c, true) },
}

// dfJSON is `df --json`.
type dfJSON struct {
	Caches  []cache.Entry `json:"caches"`
	Summary cache.Summary `json:"summary"`
}

func listAction(c *cli.Context, df bool) error {
	if c.NArg() != 0 {
		return fmt.Errorf("%w: %s takes no arguments", errUsage, c.Command.Name)
	}
	root, err := openRoot(c, false)
	if errors.Is(err, cache.ErrNotFound) {
		return printList(c, df, nil, cache.Summary{}) // no root yet: no caches
	}
	if err != nil {
		return err
	}
	entries, err := root.List(c.Context, cache.ListOptions{Deep: c.Bool("deep")})
	if err != nil {
		return err
	}
	if err := cache.SortEntries(entries, c.String("sort"), c.Bool("reverse")); err != nil {
		return err
	}
	sum, err := root.Summarize(entries)
	if err != nil {
		return err
	}
	return printList(c, df, entries, sum)
}

func printList(c *cli.Context, df bool, entries []cache.Entry, sum cache.Summary) error {
	switch {
	case c.Bool("json") && df:
		if entries == nil {
			entries = []cache.Entry{}
		}
		return writeJSON(c.App.Writer, dfJSON{Caches: entries, Summary: sum})
	case c.Bool("json"):
		return writeJSONList(c.App.Writer, entries)
	}
	return writeTable(c.App.Writer, entries, sum)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeJSONList prints a list as indented JSON; an empty list is [] not null.
func writeJSONList[T any](w io.Writer, list []T) error {
	if list == nil {
		list = []T{}
	}
	return writeJSON(w, list)
}

func writeTable(w io.Writer, entries []cache.Entry, sum cache.Summary) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tKIND\tCAP\tAPPARENT\tALLOCATED\tUSED\tINODES\tSTATE\tHOLDER\tCREATED\tLAST USED\tHITS\tGEN\tSTORE")
	for _, e := range entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", e.Key, e.Kind, human(e.CapBytes),
			human(e.ApparentBytes), human(e.AllocatedBytes), human(e.UsedBytes), inodes(e),
			state(e), holder(e), ago(&e.Created), ago(e.LastUsed), e.Hits, generation(e), dash(e.ImageStore))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d caches (%s): cap %s, allocated %s on the host, %s used inside\n"+
		"host filesystem: %s free of %s, %d of %d inodes free\n",
		sum.Caches, stateCounts(sum), human(sum.CapBytes), human(sum.AllocatedBytes), human(sum.UsedBytes),
		human(sum.HostFreeBytes), human(sum.HostBytes), sum.HostFreeInodes, sum.HostInodes)
	return err
}

// stateCounts says how many caches are in use and in each other state
// but idle, in the order of cache.States: "2 in use, 1 damaged".
func stateCounts(sum cache.Summary) string {
	parts := []string{fmt.Sprintf("%d in use", sum.InUse)}
	for _, st := range cache.States {
		if n := sum.States[st]; n > 0 && st != cache.StateInUse && st != cache.StateIdle {
			parts = append(parts, fmt.Sprintf("%d %s", n, st))
		}
	}
	return strings.Join(parts, ", ")
}

// generation shows a warm cache's generation, or whose clone a cache is.
func generation(e cache.Entry) string {
	switch {
	case e.Clone:
		return fmt.Sprintf("clone of %s (g%d)", e.Parent, e.Generation)
	case e.PreviousGenerations > 0:
		return fmt.Sprintf("g%d (+%d kept, %s)", e.Generation, e.PreviousGenerations, human(e.PreviousBytes))
	case e.Generation > 0:
		return fmt.Sprintf("g%d", e.Generation)
	}
	return "-"
}

func state(e cache.Entry) string {
	if e.Err != nil {
		return "error: " + e.Err.Error()
	}
	if e.PIDs != nil {
		return fmt.Sprintf("%s (pids %v)", e.State, e.PIDs)
	}
	return e.State
}

func holder(e cache.Entry) string {
	if e.HolderPID > 0 {
		return strconv.Itoa(e.HolderPID)
	}
	return "-"
}

func inodes(e cache.Entry) string {
	switch {
	case e.Inodes > 0:
		return fmt.Sprintf("%d/%d", e.InodesUsed, e.Inodes)
	case e.InodesUsed > 0:
		return strconv.FormatUint(e.InodesUsed, 10)
	}
	return "-"
}

func human(n int64) string {
	if n == 0 {
		return "-"
	}
	return units.BytesSize(float64(n))
}

func ago(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "never"
	}
	return units.HumanDuration(time.Since(*t)) + " ago"
}
