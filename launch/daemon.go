package launch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/docker/docker/client"
)

// Daemon is a dockerd that dindstore starts itself on a held cache, to warm
// it: private exec root and socket, no bridge, no iptables.
type Daemon struct {
	// Client talks to it.
	Client *client.Client
	cmd    *exec.Cmd
	dir    string
	exited chan struct{}
}

// DaemonConfig says how StartDaemonWith starts a dockerd.
type DaemonConfig struct {
	// DataRoot is the cache's mount, the daemon's --data-root.
	DataRoot string
	// Flags are more dockerd flags (the pinned storage driver and image
	// store, --registry-mirror, ...).
	Flags []string
	// Log takes the daemon's output.
	Log *os.File
	// Timeout bounds the wait until it answers.
	Timeout time.Duration
	// Cgroup, when set, is the directory of the cgroup the daemon starts
	// in (CLONE_INTO_CGROUP): the lease's process group, which ends the
	// daemon's whole tree when its holder dies.
	Cgroup *os.File
}

// StartDaemon starts dockerd on dataRoot with flags, and waits up to
// timeout until it answers (StartDaemonWith).
func StartDaemon(ctx context.Context, dataRoot string, flags []string, log *os.File, timeout time.Duration) (*Daemon, error) {
	return StartDaemonWith(ctx, DaemonConfig{DataRoot: dataRoot, Flags: flags, Log: log, Timeout: timeout})
}

// daemonDirPrefix names a daemon's private directory (socket, exec root,
// pid file) in the temporary directory, with the pid of the process that
// started it: when that process is killed, RemoveDaemonDirs finds it.
func daemonDirPrefix(pid int) string { return fmt.Sprintf("dindstore-warm-%d-", pid) }

// StartDaemonWith starts a dockerd as cfg says, and waits until it
// answers. On failure nothing is left running.
func StartDaemonWith(ctx context.Context, cfg DaemonConfig) (*Daemon, error) {
	dir, err := os.MkdirTemp("", daemonDirPrefix(os.Getpid()))
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "d.sock")
	args := append([]string{"--data-root", cfg.DataRoot, "--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "d.pid"), "-H", "unix://" + sock,
		// The default containerd namespace: the containerd image store keeps
		// images per namespace, and the jobs' daemons will use the default.
		"--bridge=none", "--iptables=false", "--ip-masq=false"}, cfg.Flags...)
	d := &Daemon{cmd: exec.Command("dockerd", args...), dir: dir, exited: make(chan struct{})}
	d.cmd.Stdout, d.cmd.Stderr = cfg.Log, cfg.Log
	d.cmd.SysProcAttr = daemonProcAttr(cfg.Cgroup)
	if err := d.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start dockerd: %w", err)
	}
	go func() { _ = d.cmd.Wait(); close(d.exited) }()
	if d.Client, err = client.NewClientWithOpts(client.WithHost("unix://"+sock), client.WithAPIVersionNegotiation()); err == nil {
		err = d.waitReady(ctx, cfg.Timeout)
	}
	if err != nil {
		return nil, errors.Join(err, d.Stop())
	}
	return d, nil
}

func (d *Daemon) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if _, err := d.Client.Ping(ctx); err == nil {
			return nil
		}
		select {
		case <-d.exited:
			return fmt.Errorf("dockerd exited before it answered (see its log)")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dockerd did not answer within %s (see its log)", timeout)
		}
	}
}

// Stop stops the daemon cleanly (SIGTERM; SIGKILL after a minute) and
// removes its private directory.
func (d *Daemon) Stop() error {
	defer os.RemoveAll(d.dir)
	if d.Client != nil {
		d.Client.Close()
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
		return nil
	case <-time.After(time.Minute):
		_ = d.cmd.Process.Kill()
		<-d.exited
		return fmt.Errorf("dockerd did not stop within a minute after SIGTERM; killed")
	}
}
