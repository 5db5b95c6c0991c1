package launch

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// capNames are the Linux capabilities by number (capability.h).
var capNames = []string{
	"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
	"LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
	"SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
	"SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
	"MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
	"CHECKPOINT_RESTORE",
}

// MissingCaps lists, as CAP_ names, the capabilities the kernel knows but
// this process's bounding set lacks: --privileged asks for all of them, and
// runc fails with "unable to apply caps" when one cannot be had.
func MissingCaps() []string {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil
	}
	last, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return nil
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(last)))
	return parseMissing(string(status), n)
}

func parseMissing(status string, lastCap int) []string {
	var bnd uint64
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			bnd, _ = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	var out []string
	for i := 0; i <= lastCap && i < 64; i++ {
		if bnd&(1<<i) == 0 {
			name := "cap " + strconv.Itoa(i)
			if i < len(capNames) {
				name = "CAP_" + capNames[i]
			}
			out = append(out, name)
		}
	}
	return out
}

// explain turns an engine's refusal to start the container into advice.
func explain(err error, spec Spec) error {
	msg := err.Error()
	switch {
	case spec.Runtime == "" && strings.Contains(msg, "unable to apply caps"):
		missing := MissingCaps()
		return fmt.Errorf("the engine could not start the privileged dind container: --privileged asks for every "+
			"capability, and this host's capability bounding set lacks %s. Run on a host with the full set; or make "+
			"the engine's default runtime a runc wrapper that drops those capabilities (dockerd --add-runtime NAME=PATH "+
			"--default-runtime NAME); or use a runtime that nests without --privileged (sysbox-runc) with --runtime. "+
			"The engine said: %w", strings.Join(missing, ", "), err)
	case spec.Runtime != "" && strings.Contains(msg, "unknown or invalid runtime"):
		return fmt.Errorf("the engine has no runtime %q: register it in the engine's daemon.json (\"runtimes\") "+
			"or with dockerd --add-runtime: %w", spec.Runtime, err)
	}
	return fmt.Errorf("start the dind container from %s: %w", spec.Image, err)
}
