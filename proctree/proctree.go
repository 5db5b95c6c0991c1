package proctree

import (
	"errors"
	"path/filepath"
	"strings"
)

// ErrNotSupported means the host has no writable cgroup v2 hierarchy (or
// this is not Linux): leases then have no group, and a dead lease's
// processes are found only through what they hold.
var ErrNotSupported = errors.New("no writable cgroup v2 hierarchy for lease groups")

// Dir is the directory below the cgroup v2 mount that holds every group.
const Dir = "dindstore"

// Group is one lease's process group.
type Group struct {
	// Path is the group's cgroup directory.
	Path string
}

// within reports whether path is a group directory below base/Dir (and
// not a path that leads elsewhere).
func within(base, path string) bool {
	parent := filepath.Join(base, Dir)
	clean := filepath.Clean(path)
	return clean == path && filepath.Dir(clean) == parent && !strings.HasPrefix(filepath.Base(clean), ".")
}
