package dockerd

import (
	"errors"
	"fmt"
	"strings"
)

// ErrDriverConflict means a command line asks for another storage driver
// than the one the cache is pinned to.
var ErrDriverConflict = errors.New("storage driver conflict")

// DriverEnv is the variable through which dockerd takes its storage driver
// from the environment; it overrides --storage-driver, so it must agree too.
const DriverEnv = "DOCKER_DRIVER"

// PinArgs makes a dockerd command line use driver. argv is a dockerd command
// (argv[0] named dockerd), or, with entrypoint, the arguments given to a
// docker:dind style entrypoint, where no arguments or a leading flag mean
// "dockerd with these flags". A --storage-driver (or -s) that names another
// driver is ErrDriverConflict; none is added as --storage-driver=DRIVER. Any
// other command is returned as it is: PinEnv still pins it.
func PinArgs(argv []string, driver string, entrypoint bool) ([]string, error) {
	if !dockerdLine(argv, entrypoint) {
		return argv, nil
	}
	if vals := FlagValues(argv, "--storage-driver", "-s"); len(vals) > 0 {
		if vals[0] != driver {
			return nil, fmt.Errorf("%w: the command asks for --storage-driver %s, but the cache is pinned to %s", ErrDriverConflict, vals[0], driver)
		}
		return argv, nil
	}
	return append(append([]string{}, argv...), "--storage-driver="+driver), nil
}

// dockerdLine reports whether argv is a dockerd command line: argv[0] is
// dockerd, or, for a docker:dind style entrypoint, there are no arguments
// or the first is a flag.
func dockerdLine(argv []string, entrypoint bool) bool {
	return IsDockerd(argv) || (entrypoint && (len(argv) == 0 || strings.HasPrefix(argv[0], "-")))
}

// PinEnv sets DOCKER_DRIVER=driver in env, replacing a value that disagrees;
// warning says so when there was one.
func PinEnv(env []string, driver string) (out []string, warning string) {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, DriverEnv+"="); ok {
			if v != driver && v != "" {
				warning = fmt.Sprintf("%s=%s in the environment disagrees with the cache's pinned storage driver %s; "+
					"dockerd would take it over --storage-driver, so it is set to %s", DriverEnv, v, driver, driver)
			}
			continue
		}
		out = append(out, kv)
	}
	return append(out, DriverEnv+"="+driver), warning
}
