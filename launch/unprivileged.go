package launch

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
)

// UnprivilegedCaps are the capabilities an unprivileged dind container gets
// beyond the engine's default set, and why the inner engine needs each.
var UnprivilegedCaps = map[string]string{
	"SYS_ADMIN": "mount (overlay layers, the containers' /proc, /sys, /dev), namespaces (clone/unshare/setns), " +
		"pivot_root: what runc does to start every inner container",
	"NET_ADMIN": "the inner containers' network namespaces: bring up their loopback, create bridges and veth " +
		"pairs, set routes and iptables rules",
}

// unprivilegedSecurityOpts are the security options of an unprivileged
// dind container (see docs/security.md): the engine's default seccomp
// profile refuses keyctl, which runc uses for each container's session
// keyring, and the inner runc applies the default profile to the inner
// containers itself; AppArmor's docker-default profile refuses mount.
func unprivilegedSecurityOpts() []string {
	opts := []string{"seccomp=unconfined"}
	if b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled"); err == nil && strings.HasPrefix(string(b), "Y") {
		opts = append(opts, "apparmor=unconfined")
	}
	return opts
}

// cgroupShim runs before the image's entrypoint in an unprivileged dind:
// the engine mounts a container's cgroup directories read-only unless it is
// privileged; they are the container's own subtree (cgroup v1: bind mounts
// of it; v2: its private cgroup namespace, which unprivilegedConfig asks
// for), and the inner runc must create its containers' cgroups below them.
const cgroupShim = `if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  mount -o remount,rw /sys/fs/cgroup 2>/dev/null || echo "dindstore: /sys/fs/cgroup stays read-only" >&2
else
  for d in /sys/fs/cgroup/*/; do mount -o remount,bind,rw "$d" 2>/dev/null || :; done
fi
`

// netSysctlShim, also before the entrypoint, makes /proc/sys/net writable:
// the engine mounts /proc/sys read-only unless the container is
// privileged, and Docker 28 and later fail an inner container's start when
// they cannot write its interface's sysctls (disable_ipv6: moby#47751).
// What is under /proc/sys/net belongs to the network namespace of the
// process that writes it — the dind container's own, or an inner
// container's — never to the host's; the rest of /proc/sys stays read-only.
// Never with the host's network (then it would be the host's).
const netSysctlShim = `{ mount -o bind /proc/sys/net /proc/sys/net && mount -o remount,bind,rw /proc/sys/net; } 2>/dev/null ||
  echo "dindstore: /proc/sys/net stays read-only" >&2
`

// shimScript is the script that runs before the image's entrypoint.
func shimScript(hostNetwork bool) string {
	if hostNetwork {
		return cgroupShim + `exec "$@"`
	}
	return cgroupShim + netSysctlShim + `exec "$@"`
}

// unprivileged makes the container configuration of an unprivileged dind
// from the image's entrypoint and command (see unprivilegedConfig).
func unprivileged(ctx context.Context, api client.APIClient, spec Spec, cfg *container.Config, host *container.HostConfig) error {
	img, err := api.ImageInspect(ctx, spec.Image)
	if err != nil {
		return fmt.Errorf("inspect image %s: %w", spec.Image, err)
	}
	var entry, cmd []string
	if img.Config != nil {
		entry, cmd = img.Config.Entrypoint, img.Config.Cmd
	}
	unprivilegedConfig(spec, entry, cmd, cfg, host)
	return nil
}

// unprivilegedConfig: no host devices, the capabilities, security options
// and IPv4 forwarding an inner engine needs, and the image's entrypoint
// (entry, with spec.Args or the image's cmd) behind the shim (shimScript).
func unprivilegedConfig(spec Spec, entry, cmd []string, cfg *container.Config, host *container.HostConfig) {
	if len(spec.Args) > 0 {
		cmd = spec.Args
	}
	hostNet := container.NetworkMode(spec.Network).IsHost()
	cfg.Entrypoint = append([]string{"/bin/sh", "-c", shimScript(hostNet), "dindstore-shim"}, entry...)
	cfg.Cmd = cmd
	host.Privileged = false
	host.CapAdd = append(host.CapAdd, slices.Sorted(maps.Keys(UnprivilegedCaps))...)
	host.SecurityOpt = append(host.SecurityOpt, unprivilegedSecurityOpts()...)
	if !hostNet {
		// The inner engine's bridge needs forwarding; /proc/sys is read-only.
		host.Sysctls = map[string]string{"net.ipv4.ip_forward": "1"}
	}
	if hostCgroup2() {
		// The shim makes /sys/fs/cgroup writable: it must be the container's
		// own namespace, never the host's tree (an engine may default to host).
		host.CgroupnsMode = container.CgroupnsModePrivate
	}
}

// hostCgroup2 says whether this host runs the unified cgroup v2 hierarchy
// alone (not v1, nor v1 with v2 beside it).
func hostCgroup2() bool {
	_, err := os.Stat("/sys/fs/cgroup/cgroup.controllers")
	return err == nil
}
