package main

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/dindstore/dindstore/cache"
	"github.com/dindstore/dindstore/volumes"
	"github.com/urfave/cli/v2"
)

// config is the parsed config file: top-level keys are flag names that
// apply to every command that has the flag; a table named after a command
// ([run], [prune], ...) sets that command's flags and wins over the top
// level.
type config struct {
	path     string
	global   map[string]any
	commands map[string]map[string]any
}

// loadConfig reads --config (or DINDSTORE_CONFIG), else
// /etc/dindstore/config.toml when it exists (nil when neither). Every key
// must name a flag: an unknown key is a usage error, before anything runs.
func loadConfig(c *cli.Context) (*config, error) {
	path := c.String(configFlag.Name)
	if path == "" {
		if _, err := os.Stat(defaultConfig); err != nil {
			return nil, nil
		}
		path = defaultConfig
	}
	var raw map[string]any
	if _, err := toml.DecodeFile(path, &raw); err != nil {
		return nil, fmt.Errorf("%w: cannot read the config file %s: %w", errUsage, path, err)
	}
	cfg := &config{path: path, global: map[string]any{}, commands: map[string]map[string]any{}}
	for k, v := range raw {
		if table, ok := v.(map[string]any); ok {
			cfg.commands[k] = table
		} else {
			cfg.global[k] = v
		}
	}
	return cfg, cfg.check(c.App)
}

// check refuses keys that name no flag (of any command at the top level, of
// that command in its table) and tables that name no command.
func (cfg *config) check(app *cli.App) error {
	all := flagNames(app.Flags)
	for _, cmd := range app.Commands {
		all = append(all, flagNames(cmd.Flags)...)
	}
	var bad []string
	for k := range cfg.global {
		if !slices.Contains(all, k) {
			bad = append(bad, k)
		}
	}
	for name, table := range cfg.commands {
		cmd := app.Command(name)
		if cmd == nil {
			bad = append(bad, "["+name+"]")
			continue
		}
		for k := range table {
			if !slices.Contains(flagNames(cmd.Flags), k) {
				bad = append(bad, name+"."+k)
			}
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return fmt.Errorf("%w: config file %s: unknown keys %s (keys are flag names, e.g. size = \"20GiB\", "+
			"or a [command] table of them)", errUsage, cfg.path, strings.Join(bad, ", "))
	}
	return nil
}

func flagNames(flags []cli.Flag) []string {
	var out []string
	for _, f := range flags {
		out = append(out, f.Names()...)
	}
	return out
}

// apply sets every flag of the running command (or the app's, for
// command "") that the config names and that the command line and the
// environment left unset, through the flag itself, so a value is checked
// exactly as it would be on the command line.
func (cfg *config) apply(c *cli.Context, command string, flags []cli.Flag) error {
	if cfg == nil {
		return nil
	}
	for _, f := range flags {
		name := f.Names()[0]
		v, ok := cfg.commands[command][name]
		if !ok {
			v, ok = cfg.global[name]
		}
		if !ok || c.IsSet(name) {
			continue
		}
		for _, s := range values(v) {
			err := c.Set(name, s)
			if check := valueChecks[name]; err == nil && check != nil {
				err = check(s)
			}
			if err != nil {
				return fmt.Errorf("%w: config file %s: %s = %v: %w", errUsage, cfg.path, name, v, err)
			}
		}
	}
	return nil
}

// valueChecks check the string flags whose commands parse them later, so
// that a bad value in the config file is refused naming the file.
var valueChecks = map[string]func(string) error{
	"size":             func(s string) error { _, err := cache.ParseSize(s); return err },
	"max-total":        func(s string) error { _, err := cache.ParseSize(s); return err },
	"kind":             func(s string) error { _, err := volumes.ParseKind(s); return err },
	"fs":               func(s string) error { _, err := volumes.ParseFS(s); return err },
	"keep-free":        func(s string) error { _, err := cache.ParsePercent(s); return err },
	"keep-free-inodes": func(s string) error { _, err := cache.ParsePercent(s); return err },
	"older-than":       func(s string) error { _, err := cache.ParseAge(s); return err },
}

// values turns a TOML value into flag arguments (one per array element).
func values(v any) []string {
	if list, ok := v.([]any); ok {
		var out []string
		for _, x := range list {
			out = append(out, fmt.Sprint(x))
		}
		return out
	}
	return []string{fmt.Sprint(v)}
}
