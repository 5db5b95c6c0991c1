package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
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
