package launch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/dindstore/dindstore/dockerd"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"
)

// DefaultTarget is where docker:dind keeps its data.
const DefaultTarget = "/var/lib/docker"

// Labels put on every container dindstore launches.
const (
	LabelKey  = "io.dindstore.key"
	LabelRoot = "io.dindstore.root"
	// LabelKeep is "true" on a container launched with Keep.
	LabelKeep = "io.dindstore.keep"
)

// ErrInvalid marks a spec that cannot be launched (checked before anything
// is created).
var ErrInvalid = errors.New("invalid launch")

// Spec is what to start.
type Spec struct {
	// Image is the dind image; Name an optional container name.
	Image, Name string
	// Runtime is an OCI runtime that nests without --privileged (e.g.
	// sysbox-runc); with it the container is not privileged.
	Runtime string
	// Unprivileged starts the container without --privileged: no host
	// devices, and only what an inner engine needs (see UnprivilegedCaps).
	Unprivileged bool
	// Rootless starts a docker:dind-rootless style image, whose daemon runs
	// as the image's user: not privileged (see rootlessConfig), the cache
	// at RootlessTarget unless Target says otherwise.
	Rootless bool
	// Target is where the cache is mounted in the container (empty:
	// DefaultTarget, or RootlessTarget for a rootless daemon).
	Target string
	// Network, Aliases, Env, Volumes and Publish pass through as `docker
	// run` takes them (--network, --network-alias, -e, -v, -p).
	Network          string
	Aliases, Env     []string
	Volumes, Publish []string
	// Devices pass host devices through, as `docker run --device`
	// (HOST[:CONTAINER[:PERMISSIONS]]).
	Devices []string
	// Args go to the image's entrypoint.
	Args []string
	// Labels are added to the container's.
	Labels map[string]string
	// Keep leaves the container behind when it ends (it is removed otherwise).
	Keep bool
	// ContainerdRoot, when set, is a directory of the cache bound at
	// /var/lib/containerd, for images that run a containerd of their own.
	ContainerdRoot string
	// ImageStore is the image store asked for a fresh cache (dockerd's
	// StoreGraphDriver or StoreSnapshotter; "": as Args say, else the
	// image's engine's own default).
	ImageStore string
}

// ParseImageStore reads an --image-store value: containerd (or
// snapshotter) for the containerd image store, graphdriver for the graph
// driver; "" is no request.
func ParseImageStore(s string) (string, error) {
	switch s {
	case "":
		return "", nil
	case "containerd", dockerd.StoreSnapshotter:
		return dockerd.StoreSnapshotter, nil
	case dockerd.StoreGraphDriver:
		return dockerd.StoreGraphDriver, nil
	}
	return "", fmt.Errorf("%w: --image-store %q: want containerd or graphdriver", ErrInvalid, s)
}

// TargetPath is where the cache is mounted in the container.
func (s *Spec) TargetPath() string {
	switch {
	case s.Target != "":
		return s.Target
	case s.Rootless:
		return RootlessTarget
	}
	return DefaultTarget
}

// Validate checks the spec before anything is created.
func (s *Spec) Validate() error {
	if s.Image == "" {
		return fmt.Errorf("%w: --image is required", ErrInvalid)
	}
	if s.Target != "" && !strings.HasPrefix(s.Target, "/") {
		return fmt.Errorf("%w: --target %q must be an absolute path", ErrInvalid, s.Target)
	}
	if len(s.Aliases) > 0 && s.Network == "" {
		return fmt.Errorf("%w: --network-alias needs --network", ErrInvalid)
	}
	if s.Unprivileged && s.Runtime != "" {
		return fmt.Errorf("%w: --unprivileged is for runc; with --runtime %s the container is not privileged already",
			ErrInvalid, s.Runtime)
	}
	if s.Unprivileged && s.Rootless {
		return fmt.Errorf("%w: --unprivileged and --rootless: a rootless dind is not privileged already", ErrInvalid)
	}
	for _, d := range s.Devices {
		if _, err := parseDevice(d); err != nil {
			return err
		}
	}
	if _, _, err := nat.ParsePortSpecs(s.Publish); err != nil {
		return fmt.Errorf("%w: --publish: %w", ErrInvalid, err)
	}
	return s.validateStore()
}

// validateStore refuses an --image-store that the daemon's own flags
// contradict (--feature containerd-snapshotter=BOOL).
func (s *Spec) validateStore() error {
	store, err := ParseImageStore(s.ImageStore)
	if err != nil {
		return err
	}
	if asked := dockerd.RequestedStore(s.Args); store != "" && asked != "" && asked != store {
		return fmt.Errorf("%w: --image-store asks for the %s image store, the daemon's flags for the %s one", ErrInvalid,
			store, asked)
	}
	s.ImageStore = store
	return nil
}

// Container is a started dind container.
type Container struct {
	ID      string
	Started time.Time
	// PID is the container's init process on the host.
	PID  int
	api  client.APIClient
	keep bool
}

// Adopt returns the container id, which a holder that died left running,
// for stopping it: kept (not removed) when it was launched with Keep. A
// container that is gone is ErrNotFound from the engine (cerrdefs).
func Adopt(ctx context.Context, api client.APIClient, id string) (*Container, error) {
	info, err := api.ContainerInspect(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("inspect container %s: %w", short(id), err)
	}
	keep := info.Config != nil && info.Config.Labels[LabelKeep] == "true"
	return &Container{ID: info.ID, api: api, keep: keep}, nil
}

// NewClient connects to the engine from the environment (DOCKER_HOST, ...)
// with API version negotiation.
func NewClient() (*client.Client, error) {
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("connect to the Docker engine: %w", err)
	}
	return c, nil
}

// Start creates and starts the container with the cache at mountPath bound
// at spec.Target. On failure nothing is left behind.
func Start(ctx context.Context, api client.APIClient, spec Spec, mountPath string) (_ *Container, retErr error) {
	cfg, host, net, err := configs(spec, mountPath)
	if err != nil {
		return nil, err
	}
	switch {
	case spec.Unprivileged:
		if err := unprivileged(ctx, api, spec, cfg, host); err != nil {
			return nil, err
		}
	case spec.Rootless:
		rootlessConfig(spec, host)
	}
	created, err := api.ContainerCreate(ctx, cfg, host, net, nil, spec.Name)
	if err != nil {
		return nil, fmt.Errorf("create container from %s: %w", spec.Image, err)
	}
	c := &Container{ID: created.ID, api: api, keep: spec.Keep}
	defer func() {
		if retErr != nil {
			retErr = errors.Join(retErr, api.ContainerRemove(context.WithoutCancel(ctx), c.ID, container.RemoveOptions{Force: true}))
		}
	}()
	if err := api.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		return nil, explain(err, spec)
	}
	info, err := api.ContainerInspect(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	c.PID = info.State.Pid
	c.Started, _ = time.Parse(time.RFC3339Nano, info.State.StartedAt)
	return c, nil
}

// configs builds the engine's container, host and network configuration.
func configs(spec Spec, mountPath string) (*container.Config, *container.HostConfig, *network.NetworkingConfig, error) {
	exposed, bindings, err := nat.ParsePortSpecs(spec.Publish)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: --publish: %w", ErrInvalid, err)
	}
	cfg := &container.Config{Image: spec.Image, Env: spec.Env, Labels: spec.Labels, ExposedPorts: exposed}
	if len(spec.Args) > 0 {
		cfg.Cmd = spec.Args
	}
	host := &container.HostConfig{
		Privileged:   spec.Runtime == "",
		Runtime:      spec.Runtime,
		Binds:        spec.Volumes,
		PortBindings: bindings,
		NetworkMode:  container.NetworkMode(spec.Network),
		Mounts:       []mount.Mount{{Type: mount.TypeBind, Source: mountPath, Target: spec.TargetPath()}},
	}
	for _, d := range spec.Devices {
		dev, err := parseDevice(d)
		if err != nil {
			return nil, nil, nil, err
		}
		host.Devices = append(host.Devices, dev)
	}
	if spec.ContainerdRoot != "" {
		host.Mounts = append(host.Mounts, mount.Mount{Type: mount.TypeBind, Source: spec.ContainerdRoot, Target: "/var/lib/containerd"})
	}
	var net *network.NetworkingConfig
	if spec.Network != "" && len(spec.Aliases) > 0 {
		net = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			spec.Network: {Aliases: spec.Aliases},
		}}
	}
	return cfg, host, net, nil
}

// Wait returns a channel closed when the container is no longer running
// (it exited, was stopped, or was removed).
func (c *Container) Wait(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	status, errs := c.api.ContainerWait(ctx, c.ID, container.WaitConditionNotRunning)
	go func() {
		defer close(done)
		select {
		case <-status:
		case <-errs:
		}
	}()
	return done
}

// Stop stops the container (10 s grace) and removes it unless it is kept.
func (c *Container) Stop(ctx context.Context) error {
	grace := 10
	err := c.api.ContainerStop(ctx, c.ID, container.StopOptions{Timeout: &grace})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("stop container %s: %w", short(c.ID), err)
	}
	if c.keep {
		return nil
	}
	if err := c.api.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove container %s: %w", short(c.ID), err)
	}
	return nil
}

// Logs returns the last lines of the container's output.
func (c *Container) Logs(ctx context.Context, lines int) string {
	rc, err := c.api.ContainerLogs(ctx, c.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: fmt.Sprint(lines)})
	if err != nil {
		return fmt.Sprintf("(no logs: %v)", err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(io.LimitReader(rc, 64<<10))
	return stripStreamHeaders(b)
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// stripStreamHeaders drops the 8-byte frame headers of a non-TTY log stream.
func stripStreamHeaders(b []byte) string {
	var out strings.Builder
	for len(b) >= 8 && (b[0] == 1 || b[0] == 2) && b[1] == 0 && b[2] == 0 && b[3] == 0 {
		n := int(b[4])<<24 | int(b[5])<<16 | int(b[6])<<8 | int(b[7])
		b = b[8:]
		if n > len(b) {
			n = len(b)
		}
		out.Write(b[:n])
		b = b[n:]
	}
	out.Write(b)
	return out.String()
}

// parseDevice reads HOST[:CONTAINER[:PERMISSIONS]], as `docker run
// --device` takes it.
func parseDevice(s string) (container.DeviceMapping, error) {
	parts := strings.Split(s, ":")
	d := container.DeviceMapping{PathOnHost: parts[0], PathInContainer: parts[0], CgroupPermissions: "rwm"}
	if len(parts) > 1 && parts[1] != "" {
		d.PathInContainer = parts[1]
	}
	if len(parts) > 2 {
		d.CgroupPermissions = parts[2]
	}
	if len(parts) > 3 || !strings.HasPrefix(d.PathOnHost, "/") || !strings.HasPrefix(d.PathInContainer, "/") ||
		d.CgroupPermissions == "" || strings.Trim(d.CgroupPermissions, "rwm") != "" {
		return d, fmt.Errorf("%w: --device %q: want HOST[:CONTAINER[:PERMISSIONS]], absolute paths, permissions of rwm",
			ErrInvalid, s)
	}
	return d, nil
}
