package cache

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// InnerDaemons finds the dockerd processes whose --data-root is dataRoot,
// by reading /proc/*/cmdline.
func InnerDaemons(dataRoot string) []Daemon {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var out []Daemon
	for _, p := range procs {
		raw, err := os.ReadFile(p)
		if err != nil || len(raw) == 0 {
			continue
		}
		args := strings.Split(string(bytes.TrimRight(raw, "\x00")), "\x00")
		roots := flagValues(args, "data-root", "")
		if filepath.Base(args[0]) != "dockerd" || len(roots) == 0 || roots[len(roots)-1] != dataRoot {
			continue // dockerd takes the last --data-root given
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		out = append(out, Daemon{PID: pid, Hosts: flagValues(args, "host", "H")})
	}
	return out
}

// flagValues returns the values of a long flag (--name v, --name=v) and of
// its short form (-s v, -s=v) in args.
func flagValues(args []string, long, short string) []string {
	var out []string
	for i := 1; i < len(args); i++ {
		for _, prefix := range []string{"--" + long, "-" + short} {
			if prefix == "-" {
				continue
			}
			switch a := args[i]; {
			case a == prefix && i+1 < len(args):
				out = append(out, args[i+1])
			case strings.HasPrefix(a, prefix+"="):
				out = append(out, strings.TrimPrefix(a, prefix+"="))
			}
		}
	}
	return out
}
