package main

import (
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"testing"

	"github.com/dindstore/dindstore/cache"
	"github.com/dindstore/dindstore/volumes"
	"github.com/urfave/cli/v2"
)

func TestHoistKey(t *testing.T) {
	app := newApp(io.Discard, io.Discard)
	cases := []struct{ in, want []string }{
		{[]string{"d", "run", "k", "--size", "1G", "--", "cmd", "-x"}, []string{"d", "run", "--size", "1G", "k", "--", "cmd", "-x"}},
		{[]string{"d", "--root", "/r", "create", "k", "--kind", "dir"}, []string{"d", "--root", "/r", "create", "--kind", "dir", "k"}},
		{[]string{"d", "run", "k", "cmd", "--flag"}, []string{"d", "run", "k", "cmd", "--flag"}},
		{[]string{"d", "grow", "--size", "2G", "k"}, []string{"d", "grow", "--size", "2G", "k"}},
		{[]string{"d", "ls", "--json"}, []string{"d", "ls", "--json"}},
		{[]string{"d"}, []string{"d"}},
		{[]string{"d", "clone", "a", "b"}, []string{"d", "clone", "a", "b"}},
	}
	for _, c := range cases {
		if got := hoistKey(app, c.in); !slices.Equal(got, c.want) {
			t.Errorf("hoistKey(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestExitCode(t *testing.T) {
	cases := []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("boom"), 1},
		{fmt.Errorf("wrapped: %w", cache.ErrInvalid), 2},
		{fmt.Errorf("wrapped: %w", volumes.ErrInvalid), 2},
		{fmt.Errorf("wrapped: %w", volumes.ErrShrink), 2},
		{fmt.Errorf("%w: x", errUsage), 2},
		{&cache.HeldError{Key: "k"}, 75},
		{cli.Exit("", 42), 42},
		{fmt.Errorf("mount: %w", &exec.ExitError{}), 1},
		{fmt.Errorf("mount: %w: %w", volumes.ErrCheckFailed, &exec.ExitError{}), 74},
		{fmt.Errorf("x: %w", cache.ErrInUse), 75},
		{&cache.NoRoomError{Key: "k"}, 76},
		{fmt.Errorf("x: %w", cache.ErrDamaged), 74},
	}
	for _, c := range cases {
		if got := exitCode(c.err); got != c.want {
			t.Errorf("exitCode(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}

// TestEveryCommandParses builds every command's flag set (a flag defined
// twice panics there) and its help.
func TestEveryCommandParses(t *testing.T) {
	for _, cmd := range newApp(io.Discard, io.Discard).Commands {
		app := newApp(io.Discard, io.Discard)
		if err := app.Run([]string{"dindstore", cmd.Name, "--help"}); err != nil {
			t.Errorf("%s --help: %v", cmd.Name, err)
		}
	}
}
