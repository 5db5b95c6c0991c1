package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/dindstore/dindstore/cache"
	"github.com/dindstore/dindstore/volumes"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
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
	data, err := readConfig(path)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot read the config file %s: %w", errUsage, path, err)
	}
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		return nil, fmt.Errorf("%w: cannot read the config file %s: %s", errUsage, path, shorten(err.Error()))
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
		args, err := values(f, v)
		for _, s := range args {
			if len(s) > maxValueBytes {
				err = fmt.Errorf("a value of %d bytes, over the limit of %d", len(s), maxValueBytes)
				break
			}
			if err = c.Set(name, s); err != nil {
				break
			}
			if check := valueChecks[name]; check != nil {
				if err = check(s); err != nil {
					break
				}
			}
		}
		if err != nil {
			return fmt.Errorf("%w: config file %s: %s = %s: %w", errUsage, cfg.path, name, shorten(fmt.Sprint(v)), err)
		}
	}
	return nil
}

// maxConfigBytes bounds the config file, and maxValueBytes each value in
// it: they hold flag values, not data.
const (
	maxConfigBytes = 1 << 20
	maxValueBytes  = 4096
)

// readConfig reads the config file, which must be a regular file of at
// most maxConfigBytes: a device (/dev/zero) would be read without end, a
// FIFO would hang the command (it is opened without waiting for a writer,
// then refused).
func readConfig(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	switch {
	case err != nil:
		return nil, err
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	case fi.Size() > maxConfigBytes:
		return nil, fmt.Errorf("%d bytes, over the limit of %d", fi.Size(), maxConfigBytes)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err == nil && len(data) > maxConfigBytes {
		err = fmt.Errorf("over the limit of %d bytes", maxConfigBytes)
	}
	return data, err
}

// shorten quotes at most the first 80 bytes of s, so that a huge bad value
// never makes a huge message.
func shorten(s string) string {
	const most = 80
	if len(s) <= most {
		return s
	}
	return fmt.Sprintf("%s... (%d bytes)", s[:most], len(s))
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

// values turns a TOML value into flag arguments, refusing a value of
// another type than the flag takes: a bool for a switch, an integer for a
// count, a string for anything else (sizes, durations, names), and an
// array of strings only for a flag given several times.
func values(f cli.Flag, v any) ([]string, error) {
	switch f.(type) {
	case *cli.BoolFlag:
		if b, ok := v.(bool); ok {
			return []string{strconv.FormatBool(b)}, nil
		}
		return nil, fmt.Errorf("want true or false, got %s", tomlType(v))
	case *cli.IntFlag, *cli.Int64Flag:
		if n, ok := v.(int64); ok {
			return []string{strconv.FormatInt(n, 10)}, nil
		}
		return nil, fmt.Errorf("want an integer, got %s", tomlType(v))
	case *cli.StringSliceFlag:
		return stringsOf(v)
	}
	if s, ok := v.(string); ok {
		return []string{s}, nil
	}
	return nil, fmt.Errorf("want a string (as on the command line, e.g. \"20GiB\" or \"30s\"), got %s", tomlType(v))
}

// stringsOf takes a string or an array of strings.
func stringsOf(v any) ([]string, error) {
	if s, ok := v.(string); ok {
		return []string{s}, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("want a string or an array of strings, got %s", tomlType(v))
	}
	out := make([]string, 0, len(list))
	for _, x := range list {
		s, ok := x.(string)
		if !ok {
			return nil, fmt.Errorf("want an array of strings, got an element of %s", tomlType(x))
		}
		out = append(out, s)
	}
	return out, nil
}

// tomlType names the TOML type of a decoded value.
func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "a bool"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("a %T", v)
}

// checkDurations refuses a negative duration among flags, set on the
// command line or by the config file.
func checkDurations(c *cli.Context, flags []cli.Flag) error {
	for _, f := range flags {
		if d, ok := f.(*cli.DurationFlag); ok && c.Duration(d.Name) < 0 {
			return fmt.Errorf("%w: --%s %s: a duration cannot be negative", errUsage, d.Name, c.Duration(d.Name))
		}
	}
	return nil
}
