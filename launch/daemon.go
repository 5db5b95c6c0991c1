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

// StartDaemon starts dockerd on dataRoot with flags (the pinned storage
// driver and image store, --registry-mirror, ...), and waits up to timeout
// until it answers. Its output goes to log. On failure nothing is left
// running.
func StartDaemon(ctx context.Context, dataRoot string, flags []string, log *os.File, timeout time.Duration) (*Daemon, error) {
	dir, err := os.MkdirTemp("", "dindstore-warm-")
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "d.sock")
	args := append([]string{"--data-root", dataRoot, "--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "d.pid"), "-H", "unix://" + sock,
		// The default containerd namespace: the containerd image store keeps
		// images per namespace, and the jobs' daemons will use the default.
		"--bridge=none", "--iptables=false", "--ip-masq=false"}, flags...)
	d := &Daemon{cmd: exec.Command("dockerd", args...), dir: dir, exited: make(chan struct{})}
	d.cmd.Stdout, d.cmd.Stderr = log, log
	d.cmd.SysProcAttr = daemonProcAttr()
	if err := d.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start dockerd: %w", err)
	}
	go func() { _ = d.cmd.Wait(); close(d.exited) }()
	if d.Client, err = client.NewClientWithOpts(client.WithHost("unix://"+sock), client.WithAPIVersionNegotiation()); err == nil {
		err = d.waitReady(ctx, timeout)
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
