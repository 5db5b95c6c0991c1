package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// runWithConfig runs the CLI with a config file holding text, on a fresh
// root, and returns the exit status.
func runWithConfig(t *testing.T, text string, args ...string) int {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatal(err)
	}
	all := append([]string{"dindstore", "--config", cfg, "--root", root}, args...)
	code := run(context.Background(), all)
	if _, err := os.Stat(filepath.Join(root, "records", "k.json")); err == nil && code != 0 {
		t.Errorf("%v failed (exit %d) but made cache k", args, code)
	}
	return code
}

func TestConfigRefusesBadInput(t *testing.T) {
	cases := []struct {
		name, text string
		args       []string
	}{
		{"unknown key", `sise = "20GiB"`, []string{"ls"}},
		{"unknown table", "[rnu]\nsize = \"1GiB\"", []string{"ls"}},
		{"key of another command in a table", "[ls]\nsize = \"1GiB\"", []string{"ls"}},
		{"bad size", `size = "banana"`, []string{"create", "k", "--kind", "dir"}},
		{"bad duration", "[run]\nstop-timeout = \"soon\"", []string{"run", "k", "--kind", "dir", "--", "true"}},
		{"bad kind", `kind = "floppy"`, []string{"create", "k"}},
		{"bad bool", `overcommit = "maybe"`, []string{"run", "k", "--kind", "dir", "--", "true"}},
		{"not toml", `size = `, []string{"ls"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if code := runWithConfig(t, c.text, c.args...); code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
		})
	}
}

func TestConfigSetsFlags(t *testing.T) {
	if code := runWithConfig(t, "max-count = -1\n[prune]\nolder-than = \"72h\"\ndry-run = true\n", "prune"); code != 0 {
		t.Errorf("prune with a valid config: exit %d", code)
	}
}

// --keep-free is a percentage; admission takes a fraction of the host
// filesystem (a floor of 10% is 0.1, not ten times its size).
func TestKeepFreeFraction(t *testing.T) {
	for in, want := range map[string]float64{"": 0, "10%": 0.1, "5": 0.05, "99.5%": 0.995} {
		if got, err := keepFreeFraction(in); err != nil || got != want {
			t.Errorf("%q: %v %v, want %v", in, got, err, want)
		}
	}
	if _, err := keepFreeFraction("100%"); !errors.Is(err, errUsage) {
		t.Errorf("100%%: %v", err)
	}
}

// TestConfigBounded: the config file is a regular file of at most 1 MiB,
// each value of its flag's type, and a bad value is quoted short. Special
// files are refused without reading (/dev/zero grew without end, a FIFO
// hung), an array where one value is taken, an integer where a size
// string is, a negative duration — from the file or the command line.
func TestConfigBounded(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	must(t, os.Mkdir(root, 0o700))
	fifo := filepath.Join(dir, "fifo")
	must(t, unixMkfifo(fifo))
	big := filepath.Join(dir, "big.toml")
	must(t, os.WriteFile(big, []byte("size = \""+strings.Repeat("9", 2<<20)+"\"\n"), 0o600))
	cases := []struct {
		name string
		args []string
	}{
		{"device", []string{"--config", "/dev/zero", "ls"}},
		{"fifo", []string{"--config", fifo, "ls"}},
		{"directory", []string{"--config", dir, "ls"}},
		{"over 1 MiB", []string{"--config", big, "ls"}},
		{"negative duration", []string{"run", "k", "--kind", "dir", "--stop-timeout", "-5s", "--", "true"}},
		{"unknown command", []string{"frobnicate"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, stderr := runCaptured(t, append([]string{"dindstore", "--root", root}, c.args...)...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d: %s", code, exitUsage, stderr)
			}
			if len(stderr) > 2048 {
				t.Errorf("a %d-byte error message", len(stderr))
			}
		})
	}
	run := []string{"run", "k", "--kind", "dir", "--", "true"}
	typed := map[string]struct {
		text string
		args []string
	}{
		"an array for one size":  {`size = ["1", "1073741824"]`, run},
		"an integer for a size":  {`size = 5`, run},
		"a string for a switch":  {`overcommit = "true"`, run},
		"a negative duration":    {"[run]\nstop-timeout = \"-5s\"", run},
		"a table for a value":    {"[run.size]\nx = 1", run},
		"a long bad value":       {`size = "` + strings.Repeat("x", 100000) + `"`, run},
		"a string for a number":  {"[prune]\nmax-count = \"3\"", []string{"prune", "--dry-run"}},
		"an array of non-string": {"[warm]\npull = [1, 2]", []string{"warm", "k", "--kind", "dir"}},
	}
	for name, c := range typed {
		t.Run(name, func(t *testing.T) {
			if code := runWithConfig(t, c.text, c.args...); code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func unixMkfifo(path string) error { return unix.Mkfifo(path, 0o600) }

// runCaptured runs the CLI and returns its exit status and standard error.
func runCaptured(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := runWith(context.Background(), args, &stdout, &stderr)
	return code, stderr.String()
}
