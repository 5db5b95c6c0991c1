package launch

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"golang.org/x/sys/unix"
)

// RootlessTarget is where docker:dind-rootless keeps its data.
const RootlessTarget = "/home/rootless/.local/share/docker"

// DefaultRootlessUID and DefaultRootlessGID are docker:dind-rootless's user,
// taken when the image names its user by name (which only its own
// /etc/passwd resolves) and no owner is given.
const (
	DefaultRootlessUID = 1000
	DefaultRootlessGID = 1000
)

// ErrNotSupported marks a launch mode this host's kernel cannot give.
var ErrNotSupported = fmt.Errorf("not supported here")

// ImageUser is the user the image runs as ("" for root).
func ImageUser(ctx context.Context, api client.APIClient, image string) (string, error) {
	img, err := api.ImageInspect(ctx, image)
	if err != nil {
		return "", fmt.Errorf("inspect image %s: %w", image, err)
	}
	if img.Config == nil {
		return "", nil
	}
	switch u := img.Config.User; u {
	case "", "root", "0", "0:0", "root:root":
		return "", nil
	default:
		return u, nil
	}
}

// RootlessOwner is the uid and gid an image's user stands for: numeric
// "UID[:GID]" as given (GID defaults to UID), a name the default rootless
// user's.
func RootlessOwner(user string) (uid, gid int) {
	u, g, hasGID := strings.Cut(user, ":")
	uid, err := strconv.Atoi(u)
	if err != nil || uid < 0 {
		return DefaultRootlessUID, DefaultRootlessGID
	}
	gid = uid
	if n, err := strconv.Atoi(g); hasGID && err == nil && n >= 0 {
		gid = n
	}
	return uid, gid
}

// CheckRootlessKernel says whether a rootless daemon gets native overlay
// on this kernel (overlay mounts in a user namespace: Linux 5.11). Older
// kernels need fuse-overlayfs in the image, asked for among the daemon's
// arguments (--storage-driver fuse-overlayfs); without it the launch is
// refused with the reason.
func CheckRootlessKernel(args []string) error {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return err
	}
	return checkRootlessRelease(unix.ByteSliceToString(u.Release[:]), args)
}

func checkRootlessRelease(release string, args []string) error {
	var major, minor int
	if _, err := fmt.Sscanf(release, "%d.%d", &major, &minor); err != nil {
		return fmt.Errorf("kernel release %q: %w", release, err)
	}
	if major > 5 || major == 5 && minor >= 11 {
		return nil
	}
	for i, a := range args {
		if a == "--storage-driver=fuse-overlayfs" || a == "--storage-driver" && i+1 < len(args) && args[i+1] == "fuse-overlayfs" {
			return nil
		}
	}
	return fmt.Errorf("%w: a rootless daemon on kernel %s gets no native overlay (a user namespace may mount "+
		"overlay from Linux 5.11): use an image with fuse-overlayfs and pass -- --storage-driver fuse-overlayfs, "+
		"or a kernel of 5.11 or later", ErrNotSupported, release)
}

// rootlessConfig is the host configuration of a rootless dind: not
// privileged; SYS_ADMIN only in the bounding set, for the setuid
// newuidmap/newgidmap that map the daemon's subordinate ids (its processes
// run as the image's user, with no capabilities); seccomp and the masked
// /proc paths lifted, for the daemon's user namespace and the /proc its
// containers mount; /dev/net/tun for slirp4netns and /dev/fuse for
// fuse-overlayfs, where the host has them (and --device gives no other
// node for them: slirp4netns needs the tun node open to the daemon's user,
// which a host whose /dev/net/tun is 0600 can give with a node of its own).
func rootlessConfig(spec Spec, host *container.HostConfig) {
	if spec.Runtime != "" {
		return // a runtime that isolates by itself gets the container as is
	}
	host.Privileged = false
	host.CapAdd = append(host.CapAdd, "SYS_ADMIN")
	host.SecurityOpt = append(host.SecurityOpt, unprivilegedSecurityOpts()...)
	// docker run's --security-opt systempaths=unconfined, which the API
	// takes as empty (not absent) lists.
	host.MaskedPaths, host.ReadonlyPaths = []string{}, []string{}
	for _, dev := range []string{"/dev/net/tun", "/dev/fuse"} {
		given := slices.ContainsFunc(host.Devices, func(d container.DeviceMapping) bool { return d.PathInContainer == dev })
		if _, err := os.Stat(dev); err == nil && !given {
			host.Devices = append(host.Devices, container.DeviceMapping{PathOnHost: dev, PathInContainer: dev,
				CgroupPermissions: "rwm"})
		}
	}
}
