package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/dindstore/dindstore/cache"
	"github.com/urfave/cli/v2"
)

// holdReport is what a detached holder tells the command that started it,
// once, through the pipe on its fd 3.
type holdReport struct {
	Key         string `json:"key"`
	Mount       string `json:"mount,omitempty"`
	Device      string `json:"device,omitempty"`
	Driver      string `json:"storage_driver,omitempty"`
	Kind        string `json:"kind,omitempty"`
	HolderPID   int    `json:"holder_pid,omitempty"`
	ContainerID string `json:"container_id,omitempty"`
	TookOver    int    `json:"took_over_pid,omitempty"`
	Error       string `json:"error,omitempty"`
	Code        int    `json:"-"`
	ErrCode     int    `json:"error_code,omitempty"`
}

var prepareCommand = &cli.Command{
	Name:      "prepare",
	Usage:     "take a cache for a job (runner pre-start hook): a detached holder keeps it until release",
	ArgsUsage: "KEY",
	Description: "Creates the cache when missing, starts a small detached holder that takes the lock and\n" +
		"mounts it, prints the mount (text: the path; json; env: DINDSTORE_MOUNT=... lines) and returns.\n" +
		"The holder keeps the cache until `dindstore release KEY`, or until --watch-pid dies.",
	Flags: append(append(append([]cli.Flag{}, createFlags...), leaseFlags...),
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "text", Usage: "text, json or env"},
		&cli.IntFlag{Name: "watch-pid", Usage: "release when this process ends"},
	),
	Action: func(c *cli.Context) error {
		key, err := oneKey(c)
		if err != nil {
			return err
		}
		out, pid := c.String("output"), c.Int("watch-pid")
		if out != "text" && out != "json" && out != "env" {
			return fmt.Errorf("%w: --output %q: want text, json or env", errUsage, out)
		}
		if pid < 0 || (pid > 0 && syscall.Kill(pid, 0) != nil) {
			return fmt.Errorf("%w: --watch-pid %d: no such process", errUsage, pid)
		}
		root, err := ensureCache(c, key, false)
		if err != nil {
			return err
		}
		args := append([]string{"--mode", cache.ModePrepare, "--watch-pid", strconv.Itoa(pid)}, forwardFlags(c, nil)...)
		rep, err := startHolder(root, key, args...)
		if err != nil {
			return err
		}
		return printReport(c.App.Writer, out, rep)
	},
}

var releaseCommand = &cli.Command{
	Name:      "release",
	Usage:     "end a prepare (or launch) lease: unmount, detach, release; exit 0 when nothing was held",
	ArgsUsage: "KEY",
	Flags: []cli.Flag{
		&cli.DurationFlag{Name: "timeout", Value: time.Minute, Usage: "how long to wait for the holder"},
		&cli.BoolFlag{Name: "commit", Usage: "the job succeeded: make this clone the next generation of its warm cache"},
		keepFlag,
	},
	Action: func(c *cli.Context) error {
		key, err := oneKey(c)
		if err != nil {
			return err
		}
		root, err := openRoot(c, false)
		if errors.Is(err, cache.ErrNotFound) {
			return nil // no root: nothing held
		}
		if err != nil {
			return err
		}
		released, err := root.ReleaseHolder(c.Context, key, c.Duration("timeout"))
		if err != nil {
			return err
		}
		if released {
			fmt.Fprintf(c.App.Writer, "%s released\n", key)
		} else {
			fmt.Fprintf(c.App.Writer, "%s was not held\n", key)
		}
		if c.Bool("commit") {
			err = promote(c, root, key)
		}
		return afterJob(c, root, key, err)
	},
}

// startHolder starts `dindstore hold KEY ARGS` detached (its own session,
// output to the key's log) and waits for its report.
func startHolder(root *cache.Root, key string, args ...string) (*holdReport, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	logf, err := root.OpenLog(key)
	if err != nil {
		w.Close()
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command("/proc/self/exe", append([]string{"--root", root.Path(), "hold", key}, args...)...)
	cmd.Args[0] = os.Args[0] // what ps and owner records show
	cmd.Stdout, cmd.Stderr, cmd.ExtraFiles = logf, logf, []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return nil, fmt.Errorf("start holder: %w", err)
	}
	var rep holdReport
	if err := json.NewDecoder(r).Decode(&rep); err != nil {
		_ = cmd.Wait()
		return nil, fmt.Errorf("the holder of %q ended without a word (%v); see %s", key, err, root.LogPath(key))
	}
	_ = cmd.Process.Release() // it lives on alone
	if rep.Error != "" {
		if rep.ErrCode != 0 {
			return nil, cli.Exit(rep.Error, rep.ErrCode)
		}
		return nil, errors.New(rep.Error)
	}
	return &rep, nil
}

func printReport(w io.Writer, format string, rep *holdReport) error {
	switch format {
	case "json":
		return writeJSON(w, rep)
	case "env":
		_, err := fmt.Fprintf(w, "DINDSTORE_KEY=%s\nDINDSTORE_MOUNT=%s\nDINDSTORE_DEVICE=%s\nDINDSTORE_STORAGE_DRIVER=%s\nDOCKER_DRIVER=%s\nDINDSTORE_HOLDER_PID=%d\n",
			rep.Key, rep.Mount, rep.Device, rep.Driver, rep.Driver, rep.HolderPID)
		return err
	}
	_, err := fmt.Fprintln(w, rep.Mount)
	return err
}
