package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/dindstore/dindstore/cache"
	"github.com/dindstore/dindstore/launch"
	"github.com/dindstore/dindstore/transfer"
	"github.com/dindstore/dindstore/volumes"
	"github.com/urfave/cli/v2"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	// exitDamaged is EX_IOERR from sysexits.h: the cache's filesystem lost
	// writes or recorded errors (see `dindstore repair`).
	exitDamaged = 74
	// exitInUse is EX_TEMPFAIL from sysexits.h: try again later.
	exitInUse = 75
	// exitNoRoom: admission refused a loop cache (the host lacks room for
	// what the caches in use may still write).
	exitNoRoom = 76
	// exitNotFound is EX_NOINPUT: the registry has no such reference.
	exitNotFound = 66
	// exitUnreachable is EX_UNAVAILABLE: the registry could not be reached.
	exitUnreachable = 69
	// exitNoAccess is EX_NOPERM: the registry refused the credentials.
	exitNoAccess = 77
)

var rootFlag = &cli.StringFlag{
	Name:    "root",
	Usage:   "directory that holds every cache (root-owned, 0700)",
	Value:   cache.DefaultRoot,
	EnvVars: []string{"DINDSTORE_ROOT"},
}

// defaultConfig is read when it exists and --config is not given.
const defaultConfig = "/etc/dindstore/config.toml"

var configFlag = &cli.StringFlag{
	Name:    "config",
	Usage:   "TOML file with defaults for any flag of any command, by its name (size = \"20GiB\", stop-timeout = \"30s\"), or in a [command] table; unknown keys are refused",
	EnvVars: []string{"DINDSTORE_CONFIG"},
}

// globalFlags are the app's flags; root may come from the config file.
var globalFlags = []cli.Flag{rootFlag, configFlag}

// configKey is where the app's Before leaves the parsed config file for
// the commands' Before.
const configKey = "dindstore.config"

// withConfig loads the config file once for the app, applies it to the
// global flags, and to each command's flags before that command runs.
func withConfig(app *cli.App) {
	app.Before = func(c *cli.Context) error {
		cfg, err := loadConfig(c)
		if err != nil {
			return err
		}
		c.App.Metadata = map[string]any{configKey: cfg}
		return cfg.apply(c, "", globalFlags)
	}
	for _, cmd := range app.Commands {
		cmd := cmd
		before := cmd.Before
		cmd.Before = func(c *cli.Context) error {
			cfg, _ := c.App.Metadata[configKey].(*config)
			if err := cfg.apply(c, cmd.Name, cmd.Flags); err != nil {
				return err
			}
			if err := checkDurations(c, cmd.Flags); err != nil {
				return err
			}
			if before != nil {
				return before(c)
			}
			return nil
		}
	}
}

// errUsage marks command-line mistakes (exit status 2).
var errUsage = errors.New("usage")

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:      "dindstore",
		Usage:     "storage backends for inner Docker daemons",
		Writer:    stdout,
		ErrWriter: stderr,
		Flags:     globalFlags,
		Commands: []*cli.Command{
			createCommand, runCommand, lsCommand, dfCommand, growCommand, rmCommand, recoverCommand,
			pruneCommand, trimCommand, inspectCommand, gcCommand, metricsCommand, serveCommand,
			prepareCommand, releaseCommand, launchCommand, holdCommand, cloneCommand, commitCommand,
			warmCommand, repairCommand, guardCommand, csiCommand, pushCommand, pullCommand,
		},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return fmt.Errorf("%w: %w", errUsage, err)
		},
		ExitErrHandler:  func(*cli.Context, error) {}, // run decides the status
		Action:          unknownCommand,
		HideHelpCommand: true,
	}
	for _, c := range app.Commands {
		c.OnUsageError = app.OnUsageError
	}
	withConfig(app)
	return app
}

// run runs the CLI and returns the process exit status.
func run(ctx context.Context, args []string) int {
	return runWith(ctx, args, os.Stdout, os.Stderr)
}

// runWith is run with the CLI's output going to stdout and stderr.
func runWith(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	err := app.RunContext(ctx, hoistKey(app, args))
	code := exitCode(err)
	if err != nil && err.Error() != "" {
		fmt.Fprintf(stderr, "dindstore: %v\n", err)
	}
	return code
}

// exitCode maps an error to the documented exit statuses.
func exitCode(err error) int {
	// Only an exit error made here (cli.Exit) carries a status: a tool's
	// *exec.ExitError deep inside an error is an ExitCoder too, and its
	// status means nothing to dindstore's callers.
	ec, isExit := err.(cli.ExitCoder)
	switch {
	case err == nil:
		return exitOK
	case isExit:
		return ec.ExitCode()
	case errors.Is(err, cache.ErrLocked), errors.Is(err, cache.ErrInUse), errors.Is(err, cache.ErrPinned):
		return exitInUse
	case errors.Is(err, cache.ErrNoRoom):
		return exitNoRoom
	case errors.Is(err, transfer.ErrNotFound):
		return exitNotFound
	case errors.Is(err, transfer.ErrNetwork):
		return exitUnreachable
	case errors.Is(err, transfer.ErrAuth):
		return exitNoAccess
	case errors.Is(err, cache.ErrDamaged), errors.Is(err, volumes.ErrCheckFailed), errors.Is(err, transfer.ErrCorrupt):
		return exitDamaged
	case errors.Is(err, errUsage), errors.Is(err, cache.ErrInvalid), errors.Is(err, cache.ErrOwnerMismatch),
		errors.Is(err, volumes.ErrInvalid), errors.Is(err, volumes.ErrShrink), errors.Is(err, launch.ErrInvalid),
		errors.Is(err, transfer.ErrInvalid):
		return exitUsage
	}
	return exitFailure
}

// hoistKey lets a command's flags follow its KEY, as in
// `dindstore run KEY --size 20GiB -- CMD`: Go's flag parsing stops at the
// first argument that is not a flag, so KEY is moved behind the flags (and
// in front of a `--`). Without `--`, a command line after KEY is left alone.
func hoistKey(app *cli.App, args []string) []string {
	i := commandIndex(app, args)
	if i < 0 || i+1 >= len(args) || strings.HasPrefix(args[i+1], "-") {
		return args
	}
	key, rest := args[i+1], args[i+2:]
	dash := slices.Index(rest, "--")
	if dash < 0 {
		if args[i] == "run" {
			return args
		}
		dash = len(rest)
	}
	if !slices.ContainsFunc(rest[:dash], func(a string) bool { return strings.HasPrefix(a, "-") }) {
		return args // no flags after KEY: nothing to move (e.g. clone SRC DST)
	}
	out := append([]string{}, args[:i+1]...)
	out = append(out, rest[:dash]...)
	out = append(out, key)
	return append(out, rest[dash:]...)
}

// commandIndex finds the subcommand in args, skipping global flags.
func commandIndex(app *cli.App, args []string) int {
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a == "--root" || a == "-root" || a == "--config" || a == "-config" {
			i++ // its value
			continue
		}
		if strings.HasPrefix(a, "-") {
			continue
		}
		if app.Command(a) != nil {
			return i
		}
		return -1
	}
	return -1
}

// openRoot opens the --root; create makes it when missing.
func openRoot(c *cli.Context, create bool) (*cache.Root, error) {
	return cache.OpenRoot(c.String(rootFlag.Name), create)
}

// oneKey returns the single KEY argument of a command.
func oneKey(c *cli.Context) (string, error) {
	if c.NArg() != 1 {
		return "", fmt.Errorf("%w: %s takes exactly one KEY, got %d arguments", errUsage, c.Command.Name, c.NArg())
	}
	key := c.Args().First()
	return key, cache.ValidateKey(key)
}

// keyAndRest splits `KEY [--] [ARGS...]` and checks KEY.
func keyAndRest(c *cli.Context) (string, []string, error) {
	args := c.Args().Slice()
	if len(args) == 0 {
		return "", nil, fmt.Errorf("%w: %s needs KEY", errUsage, c.Command.Name)
	}
	rest := args[1:]
	if len(rest) > 0 && rest[0] == "--" {
		rest = rest[1:]
	}
	return args[0], rest, cache.ValidateKey(args[0])
}

// keyAndRoot reads the single KEY argument and opens the existing root.
func keyAndRoot(c *cli.Context) (string, *cache.Root, error) {
	key, err := oneKey(c)
	if err != nil {
		return "", nil, err
	}
	root, err := openRoot(c, false)
	return key, root, err
}

// unknownCommand is the app's action: without a command it shows the help,
// with an argument that names no command it is a usage error (exit 2).
func unknownCommand(c *cli.Context) error {
	if c.NArg() == 0 {
		return cli.ShowAppHelp(c)
	}
	return fmt.Errorf("%w: no command %q; `dindstore --help` lists them", errUsage, shorten(c.Args().First()))
}
