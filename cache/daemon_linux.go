package cache

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/dindstore/dindstore/dockerd"
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
		roots := dockerd.FlagValues(args, "--data-root")
		if !dockerd.IsDockerd(args) || len(roots) == 0 || roots[len(roots)-1] != dataRoot {
			continue // dockerd takes the last --data-root given
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		out = append(out, Daemon{PID: pid, Hosts: dockerd.FlagValues(args, "--host", "-H")})
	}
	return out
}
