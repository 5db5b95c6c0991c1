package dockerd

import (
	"path/filepath"
	"slices"
	"strings"
)

// IsDockerd reports whether a command line runs dockerd.
func IsDockerd(argv []string) bool { return len(argv) > 0 && filepath.Base(argv[0]) == "dockerd" }

// FlagValues returns, in order, the values a command line gives the flags
// named (e.g. "--storage-driver", "-s"), written "--name value" or
// "--name=value"; a flag last on the line, with no value, gives "".
func FlagValues(argv []string, names ...string) []string {
	var out []string
	for i, a := range argv {
		name, val, hasVal := strings.Cut(a, "=")
		if !slices.Contains(names, name) {
			continue
		}
		if !hasVal && i+1 < len(argv) {
			val = argv[i+1]
		}
		out = append(out, val)
	}
	return out
}
