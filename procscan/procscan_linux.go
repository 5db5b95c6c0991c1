//go:build linux

package procscan

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Find returns every process but this one that uses the target filesystem,
// and, as users with PID 0, its mounts in this process's own mount
// namespace outside Target.Ignore. Processes that go away during the scan
// are skipped.
func Find(t Target) ([]User, error) {
	pids, err := listPIDs()
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	ns := map[int]string{}
	tables := map[string][]*mountinfo.Info{}
	for _, pid := range append([]int{self}, pids...) {
		id := nsOf(pid)
		ns[pid] = id
		if _, ok := tables[id]; !ok && id != "" {
			tables[id] = readMounts(pid)
		}
	}
	own := ns[self]
	devs := expand(t, tables, own)
	blocks := toSet(t.Blocks)
	out := ownMounts(tables[own], devs, t)
	for _, pid := range pids {
		if pid == self {
			continue
		}
		how := ""
		if ns[pid] != own {
			how = nsHolds(tables[ns[pid]], devs, t.Trees, ns[pid])
		}
		if how == "" {
			how = filesOn(pid, devs, blocks)
		}
		if how != "" {
			out = append(out, User{PID: pid, Command: command(pid), How: how})
		}
	}
	return out, nil
}

// listPIDs lists the numeric entries of /proc.
func listPIDs() ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("procscan: %w", err)
	}
	var out []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out, nil
}

// nsOf names the mount namespace of pid ("" when it is gone).
func nsOf(pid int) string {
	s, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
	return s
}

// readMounts reads pid's mount table (nil when it is gone).
func readMounts(pid int) []*mountinfo.Info {
	f, err := os.Open(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		return nil
	}
	defer f.Close()
	infos, _ := mountinfo.GetMountsFromReader(f, nil)
	return infos
}

func toSet(devs []Dev) map[Dev]bool {
	out := map[Dev]bool{}
	for _, d := range devs {
		out[d] = true
	}
	return out
}

// expand adds to the target's devices every filesystem stacked on it: the
// mounts below an ignored mount point in our namespace (an inner daemon's
// overlays), and overlays anywhere whose directories lie below PathPrefix.
func expand(t Target, tables map[string][]*mountinfo.Info, own string) map[Dev]bool {
	devs := toSet(t.Devs)
	for id, table := range tables {
		for _, m := range table {
			if id == own && underAny(m.Mountpoint, t.Ignore) {
				devs[Dev{uint32(m.Major), uint32(m.Minor)}] = true
				continue
			}
			if m.FSType != "overlay" {
				continue
			}
			for _, d := range overlayDirs(m.VFSOptions) {
				if below(d, t.PathPrefix) {
					devs[Dev{uint32(m.Major), uint32(m.Minor)}] = true
				}
			}
		}
	}
	return devs
}

func underAny(p string, prefixes []string) bool {
	for _, pre := range prefixes {
		if below(p, pre) {
			return true
		}
	}
	return false
}

// ownMounts reports mounts of the devices in our own namespace outside the
// ignored mount points, as users with PID 0.
func ownMounts(table []*mountinfo.Info, devs map[Dev]bool, t Target) []User {
	var out []User
	for _, m := range table {
		if holds(Dev{uint32(m.Major), uint32(m.Minor)}, m.Root, devs, t.Trees) && !underAny(m.Mountpoint, t.Ignore) {
			out = append(out, User{How: fmt.Sprintf("mounted at %s in dindstore's mount namespace", m.Mountpoint)})
		}
	}
	return out
}

// nsHolds says how a mount namespace holds one of the devices, or "".
func nsHolds(table []*mountinfo.Info, devs map[Dev]bool, trees []Tree, id string) string {
	for _, m := range table {
		if holds(Dev{uint32(m.Major), uint32(m.Minor)}, m.Root, devs, trees) {
			return fmt.Sprintf("its mount namespace %s holds %d:%d at %s", id, m.Major, m.Minor, m.Mountpoint)
		}
	}
	return ""
}

// filesOn says which of pid's directories or open files lie on one of the
// devices (or are one of the block devices), or "".
func filesOn(pid int, devs, blocks map[Dev]bool) string {
	base := fmt.Sprintf("/proc/%d/", pid)
	links := []string{"cwd", "root", "exe"}
	if fds, err := os.ReadDir(base + "fd"); err == nil {
		for _, fd := range fds {
			links = append(links, "fd/"+fd.Name())
		}
	}
	for _, l := range links {
		var st unix.Stat_t
		if unix.Stat(base+l, &st) != nil {
			continue
		}
		on := devs[Dev{unix.Major(st.Dev), unix.Minor(st.Dev)}]
		if st.Mode&unix.S_IFMT == unix.S_IFBLK && blocks[Dev{unix.Major(st.Rdev), unix.Minor(st.Rdev)}] {
			on = true
		}
		if on {
			target, _ := os.Readlink(base + l)
			return fmt.Sprintf("%s is %s", l, target)
		}
	}
	return ""
}

// command reads pid's command line for messages.
func command(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	s := strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
	if err != nil || s == "" {
		c, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		s = "[" + strings.TrimSpace(string(c)) + "]"
	}
	if len(s) > 100 {
		s = s[:97] + "..."
	}
	return s
}

// Parent reads pid's parent process id (0 when it is gone).
func Parent(pid int) int {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// Command is the command line of pid, cut for messages.
func Command(pid int) string { return command(pid) }
