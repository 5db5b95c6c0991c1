package handoff

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/dindstore/dindstore/internal/fault"
	"github.com/dindstore/dindstore/proctree"
)

// MountPlaceholder in a Command's arguments is replaced by the mount path.
const MountPlaceholder = "{mount}"

// Command is a payload that runs a command on the mount (`dindstore run`):
// {mount} in its arguments becomes the mount path, DINDSTORE_MOUNT is set,
// and it starts straight into the lease's process group when the lease
// has one, so that everything it starts ends with it. It dies with
// dindstore (parent-death signal).
type Command struct {
	// Argv is the command line; Env its environment (os.Environ when nil).
	Argv, Env []string
	// Pin, when set, rewrites Argv and Env for the lease before the start
	// (see PinCommand).
	Pin func(l Lease, argv, env []string) ([]string, []string, error)
	// Stdin, Stdout and Stderr default to dindstore's own.
	Stdin          *os.File
	Stdout, Stderr *os.File

	cmd    *exec.Cmd
	group  *proctree.Group
	failed bool // an injected failure ended it (fault point while-tree-runs); under mu
	ending
}

// ExitNotFound is the shell's status for a command that could not be run.
const ExitNotFound = 127

// Start starts the command on the lease's mount.
func (c *Command) Start(ctx context.Context, l Lease) error {
	argv, env := c.Argv, c.Env
	if env == nil {
		env = os.Environ()
	}
	if c.Pin != nil {
		var err error
		if argv, env, err = c.Pin(l, argv, env); err != nil {
			return err
		}
	}
	if len(argv) == 0 {
		return errors.New("no command to run")
	}
	args := make([]string, len(argv))
	for i, a := range argv {
		args[i] = strings.ReplaceAll(a, MountPlaceholder, l.MountPath())
	}
	c.cmd = exec.Command(args[0], args[1:]...)
	c.cmd.Stdin, c.cmd.Stdout, c.cmd.Stderr = orStd(c.Stdin, os.Stdin), orStd(c.Stdout, os.Stdout), orStd(c.Stderr, os.Stderr)
	c.cmd.Env = append(env, "DINDSTORE_MOUNT="+l.MountPath())
	c.group = leaseGroup(l)
	if err := c.start(); err != nil {
		return fmt.Errorf("start %s: %w", args[0], err)
	}
	c.init()
	go func() { c.end(c.cmd.Wait()) }()
	c.armFault()
	return nil
}

func orStd(f, std *os.File) *os.File {
	if f != nil {
		return f
	}
	return std
}

// start starts the command straight into the lease's process group, so
// that no fork of it escapes the group.
func (c *Command) start() error {
	c.cmd.SysProcAttr = procAttr()
	if c.group == nil {
		return c.cmd.Start()
	}
	dir, err := c.group.Dir()
	if err != nil {
		return err
	}
	defer dir.Close()
	setCgroup(c.cmd.SysProcAttr, int(dir.Fd()))
	return c.cmd.Start()
}

// armFault arms the failure point while-tree-runs (a -tags faults build
// only): a second after the start, dindstore dies there (kill mode) or the
// command's whole tree is killed (error mode).
func (c *Command) armFault() {
	if !fault.Enabled {
		return
	}
	go func() {
		time.Sleep(time.Second)
		if err := fault.Point("while-tree-runs"); err != nil {
			fmt.Fprintf(os.Stderr, "dindstore: %v: killing the command's whole tree\n", err)
			c.mu.Lock()
			c.failed = true
			c.mu.Unlock()
			_ = c.Kill()
		}
	}()
}

// Signal passes sig on to the command.
func (c *Command) Signal(sig os.Signal) error { return c.cmd.Process.Signal(sig) }

// Kill SIGKILLs the command and everything of its lease's group.
func (c *Command) Kill() error {
	err := c.cmd.Process.Kill()
	if c.group != nil {
		err = errors.Join(err, c.group.Signal(syscall.SIGKILL))
	}
	return err
}

// Done is closed when the command has ended.
func (c *Command) Done() <-chan struct{} { return c.done }

// Status turns the command's end into a shell-style exit status.
func (c *Command) Status() (int, error) {
	c.mu.Lock()
	failed := c.failed
	c.mu.Unlock()
	if failed {
		return 1, fault.ErrInjected
	}
	return ExitStatus(c.result())
}

// ExitStatus turns Wait's error into a shell-style exit status: the exit
// code, or 128+N for a process killed by signal N.
func ExitStatus(err error) (int, error) {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		if err != nil {
			return 1, err
		}
		return 0, nil
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return ee.ExitCode(), nil
}

// leaseGroup is the lease's process group (a cache lease has one where the
// host gives cgroups), nil otherwise.
func leaseGroup(l Lease) *proctree.Group {
	if g, ok := l.(interface{ Group() *proctree.Group }); ok {
		return g.Group()
	}
	return nil
}
