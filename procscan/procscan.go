package procscan

import (
	"fmt"
	"strings"
)

// Dev is a device number split as mountinfo shows it (major:minor).
type Dev struct{ Major, Minor uint32 }

// String formats the device as major:minor.
func (d Dev) String() string { return fmt.Sprintf("%d:%d", d.Major, d.Minor) }

// Target says which filesystem to look for.
type Target struct {
	// Devs are the device numbers of the filesystem's mounts (a loop
	// device's number, and any overlay stacked on it).
	Devs []Dev
	// Blocks are block devices whose node, held open, counts as a use.
	Blocks []Dev
	// PathPrefix, when set, marks overlay mounts whose upper, lower or work
	// directories lie below it as mounts of the filesystem too.
	PathPrefix string
	// Trees are directory trees of a filesystem (a bind-mounted directory):
	// a mount of the device whose root lies in the tree is a mount of it.
	Trees []Tree
	// Ignore are mount points in this process's own mount namespace that
	// do not count (the mount the caller is about to clear itself).
	Ignore []string
}

// Tree is a directory tree of a filesystem: its device, and the path of its
// top relative to the filesystem's root (mountinfo's root field).
type Tree struct {
	Dev  Dev
	Root string
}

// holds tells whether a mount (device, root in its filesystem) is one of
// the devices or lies in one of the trees.
func holds(dev Dev, root string, devs map[Dev]bool, trees []Tree) bool {
	if devs[dev] {
		return true
	}
	for _, t := range trees {
		if t.Dev == dev && below(root, t.Root) {
			return true
		}
	}
	return false
}

// User is a process that uses the filesystem.
type User struct {
	PID     int    `json:"pid"`
	Command string `json:"command"`
	// How says what ties it to the filesystem.
	How string `json:"how"`
}

// String names the user for messages.
func (u User) String() string {
	if u.PID == 0 {
		return u.How
	}
	return fmt.Sprintf("pid %d (%s): %s", u.PID, u.Command, u.How)
}

// Describe lists users for an error message, at most max of them.
func Describe(users []User, max int) string {
	var parts []string
	for i, u := range users {
		if i == max {
			parts = append(parts, fmt.Sprintf("and %d more", len(users)-max))
			break
		}
		parts = append(parts, u.String())
	}
	return strings.Join(parts, "; ")
}

// PIDs lists the users' process ids.
func PIDs(users []User) []int {
	out := make([]int, 0, len(users))
	for _, u := range users {
		out = append(out, u.PID)
	}
	return out
}

// overlayDirs returns the directories an overlay mount's options name.
func overlayDirs(opts string) []string {
	var out []string
	for _, o := range strings.Split(opts, ",") {
		k, v, ok := strings.Cut(o, "=")
		if !ok {
			continue
		}
		switch k {
		case "upperdir", "workdir":
			out = append(out, v)
		case "lowerdir":
			out = append(out, strings.Split(v, ":")...)
		}
	}
	return out
}

// below reports whether p is prefix or lies below it.
func below(p, prefix string) bool {
	return prefix != "" && (p == prefix || strings.HasPrefix(p, strings.TrimSuffix(prefix, "/")+"/"))
}
