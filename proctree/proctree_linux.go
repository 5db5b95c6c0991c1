//go:build linux

package proctree

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// base finds the cgroup v2 hierarchy: /sys/fs/cgroup itself on a unified
// host, /sys/fs/cgroup/unified on a hybrid one.
func base() (string, error) {
	for _, p := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st unix.Statfs_t
		if unix.Statfs(p, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return p, nil
		}
	}
	return "", ErrNotSupported
}

// New creates the group name (a lease's unique name).
func New(name string) (*Group, error) {
	b, err := base()
	if err != nil {
		return nil, err
	}
	if name == "" || strings.ContainsAny(name, "/\x00") || strings.HasPrefix(name, ".") {
		return nil, fmt.Errorf("proctree: bad group name %q", name)
	}
	parent := filepath.Join(b, Dir)
	if err := os.Mkdir(parent, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("%w: %w", ErrNotSupported, err)
	}
	path := filepath.Join(parent, name)
	if err := os.Mkdir(path, 0o755); err != nil {
		return nil, fmt.Errorf("proctree: create group: %w", err)
	}
	return &Group{Path: path}, nil
}

// Open returns the group at path, which must be a group directory made by
// New; (nil, nil) when it is gone.
func Open(path string) (*Group, error) {
	b, err := base()
	if err != nil {
		return nil, err
	}
	if !within(b, path) {
		return nil, fmt.Errorf("proctree: %s is not a lease group below %s", path, filepath.Join(b, Dir))
	}
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("proctree: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("proctree: %s is not a directory", path)
	}
	return &Group{Path: path}, nil
}

// Dir opens the group's directory, for starting a process straight into it
// (syscall.SysProcAttr UseCgroupFD).
func (g *Group) Dir() (*os.File, error) {
	f, err := os.OpenFile(g.Path, os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("proctree: open group: %w", err)
	}
	return f, nil
}

// inGroup lists the processes in the group's cgroup and its child cgroups.
func (g *Group) inGroup() ([]int, error) {
	var out []int
	err := filepath.WalkDir(g.Path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			return nil // removed meanwhile
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				out = append(out, pid)
			}
		}
		return nil
	})
	return out, err
}

// Members lists the group's live processes and their live descendants
// wherever they are (runc moves containers to cgroups of their own; the
// shim, a member, stays their parent).
func (g *Group) Members() ([]int, error) {
	in, err := g.inGroup()
	if err != nil {
		return nil, fmt.Errorf("proctree: read group %s: %w", g.Path, err)
	}
	if len(in) == 0 {
		return nil, nil // no member, so no descendant: no need to scan /proc
	}
	children := childrenMap()
	seen := map[int]bool{}
	queue := in
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		if seen[pid] {
			continue
		}
		seen[pid] = true
		queue = append(queue, children[pid]...)
	}
	out := make([]int, 0, len(seen))
	for pid := range seen {
		if alive(pid) {
			out = append(out, pid)
		}
	}
	sort.Ints(out)
	return out, nil
}

// childrenMap maps every live process to its children, from /proc.
func childrenMap() map[int][]int {
	out := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, state := statOf(pid); ppid > 0 && state != 'Z' {
			out[ppid] = append(out[ppid], pid)
		}
	}
	return out
}

// statOf reads pid's parent and state from /proc/PID/stat.
func statOf(pid int) (ppid int, state byte) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return 0, 0
	}
	fields := strings.Fields(line[i+1:])
	if len(fields) < 2 || len(fields[0]) == 0 {
		return 0, 0
	}
	ppid, _ = strconv.Atoi(fields[1])
	return ppid, fields[0][0]
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	_, state := statOf(pid)
	return state != 0 && state != 'Z'
}

// Signal sends sig to every member.
func (g *Group) Signal(sig syscall.Signal) error {
	pids, err := g.Members()
	if err != nil {
		return err
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, sig)
	}
	return nil
}

// Kill ends every member with SIGKILL and waits until none is left, or ctx
// ends. It returns how many processes it found to end.
func (g *Group) Kill(ctx context.Context) (int, error) {
	return killLoop(ctx, " of "+g.Path, func() ([]int, error) {
		pids, err := g.Members()
		if len(pids) > 0 {
			// cgroup.kill also catches what forks between the read and the kill.
			_ = os.WriteFile(filepath.Join(g.Path, "cgroup.kill"), []byte("1"), 0)
		}
		return pids, err
	})
}

// killLoop SIGKILLs the processes next lists until it lists none, or ctx
// ends (the error names those left, and what they were of). It returns how
// many distinct processes it killed.
func killLoop(ctx context.Context, of string, next func() ([]int, error)) (int, error) {
	ended := map[int]bool{}
	for {
		pids, err := next()
		if err != nil {
			return len(ended), err
		}
		if len(pids) == 0 {
			return len(ended), nil
		}
		for _, pid := range pids {
			ended[pid] = true
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		select {
		case <-ctx.Done():
			return len(ended), fmt.Errorf("proctree: processes %v%s still alive: %w", pids, of, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Remove removes the group's cgroup directories, deepest first. A group
// that still has processes cannot be removed (EBUSY).
func (g *Group) Remove() error {
	var dirs []string
	_ = filepath.WalkDir(g.Path, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := rmdirSettled(dirs[i]); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("proctree: remove group %s: %w", dirs[i], err)
		}
	}
	return nil
}

// rmdirSettled removes a cgroup directory, retrying EBUSY for up to two
// seconds: a process SIGKILLed a moment ago counts as dead for Members but
// stays in its cgroup until the kernel has finished its exit.
func rmdirSettled(dir string) error {
	var err error
	for try := 0; try < 100; try++ {
		if err = unix.Rmdir(dir); !errors.Is(err, unix.EBUSY) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

// KillAll SIGKILLs the processes and waits until none of them is alive, or
// ctx ends.
func KillAll(ctx context.Context, pids []int) error {
	_, err := killLoop(ctx, "", func() ([]int, error) {
		var left []int
		for _, pid := range pids {
			if alive(pid) {
				left = append(left, pid)
			}
		}
		return left, nil
	})
	return err
}

// PathFor is the path New(name) makes, without making it.
func PathFor(name string) (string, error) {
	b, err := base()
	if err != nil {
		return "", err
	}
	return filepath.Join(b, Dir, name), nil
}
