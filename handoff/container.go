package handoff

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/dindstore/dindstore/cache"
	"github.com/dindstore/dindstore/dockerd"
	"github.com/dindstore/dindstore/launch"
	"github.com/docker/docker/client"
)

// Owner is a user and group that the mount's root directory is given to.
type Owner struct{ UID, GID int }

// begin starts the lease's dind container: the spec pinned to the cache,
// labelled, the mount given to a rootless daemon's user (or Owner), and
// the container recorded in the lease's owner record (so that a guard can
// stop it when the holder dies).
func (c *Container) begin(ctx context.Context, l Lease) (*launch.Container, error) {
	lease, ok := l.(*cache.Lease)
	if !ok {
		return nil, fmt.Errorf("a container needs a cache lease, got %T", l)
	}
	api, err := launch.NewClient()
	if err != nil {
		return nil, err
	}
	spec := c.Spec
	if err := c.setOwner(ctx, api, lease, &spec); err != nil {
		return nil, err
	}
	if err := PinContainer(ctx, api, lease, &spec); err != nil {
		return nil, err
	}
	spec.Labels = map[string]string{launch.LabelKey: lease.Key(), launch.LabelRoot: c.RootPath}
	if spec.Keep {
		spec.Labels[launch.LabelKeep] = "true"
	}
	ctr, err := launch.Start(ctx, api, spec, lease.MountPath())
	if err != nil {
		return nil, err
	}
	if err := lease.SetContainer(ctr.ID, ctr.Started); err != nil {
		return nil, errors.Join(err, ctr.Stop(context.WithoutCancel(ctx)))
	}
	return ctr, nil
}

// setOwner decides whether the daemon is rootless (asked for, or the
// image's user is not root), and gives the mount's root to its user — the
// Owner given, else the image's — once, as the cache records (see
// cache.Lease.SetOwner). A rootless daemon needs a kernel that gives it
// overlay (launch.CheckRootlessKernel).
func (c *Container) setOwner(ctx context.Context, api client.APIClient, lease *cache.Lease, spec *launch.Spec) error {
	user, err := launch.ImageUser(ctx, api, spec.Image)
	if err != nil {
		return err
	}
	if user != "" && !spec.Rootless {
		// A rootless dind is not privileged already: --unprivileged's
		// settings (for a daemon running as root) give way to its own.
		spec.Rootless, spec.Unprivileged = true, false
		fmt.Fprintf(os.Stderr, "dindstore: %s runs as %q: launching it rootless (docs/security.md)\n", spec.Image, user)
	}
	if spec.Rootless {
		if err := launch.CheckRootlessKernel(spec.Args); err != nil {
			return err
		}
	}
	o := c.Owner
	if o == nil && spec.Rootless {
		uid, gid := launch.RootlessOwner(user)
		o = &Owner{UID: uid, GID: gid}
	}
	if o == nil {
		return nil
	}
	return lease.SetOwner(o.UID, o.GID)
}

// containerStore decides the store of a dind container on the cache, and
// the engine to pin it for. The image's engine is asked only when it
// matters: a fresh cache, or the containerd store (which engines before 23
// lack); any engine has the graph driver.
func containerStore(ctx context.Context, api client.APIClient, lease *cache.Lease, spec *launch.Spec) (string, dockerd.Engine, error) {
	recorded := lease.ImageStore()
	if recorded == "" {
		// Filled by a holder that died before its release recorded it.
		recorded = dockerd.DetectStore(lease.MountPath())
	}
	requested := spec.ImageStore
	if requested == "" {
		requested = dockerd.RequestedStore(spec.Args)
	}
	eng := dockerd.Engine{}
	if recorded == "" || recorded == dockerd.StoreSnapshotter || requested == dockerd.StoreSnapshotter {
		var err error
		if eng, err = launch.ImageEngine(ctx, api, spec.Image); err != nil {
			return "", eng, err
		}
	}
	store, err := dockerd.DecideStore(recorded, requested, eng)
	if err == nil && store == dockerd.StoreGraphDriver {
		eng.Features = false // the graph driver needs no --feature: --storage-driver selects it
	}
	return store, eng, err
}

// PinContainer pins a dind container's image store and storage driver to
// the cache's: the store it was filled with, else the one the launch asks
// for (spec.ImageStore, the daemon's --feature), else the image's engine's
// own default for a fresh data root (launch.ImageEngine: the containerd
// store from Docker 29). A store the cache does not hold, or the image's
// engine does not have, is refused here, before any container exists
// (dockerd.ErrStoreMismatch, naming both). The store is not recorded
// here: the release records what the daemon really used. It also gives
// /var/lib/containerd a directory of the cache, for images that run a
// containerd of their own, so that nothing lives outside it.
func PinContainer(ctx context.Context, api client.APIClient, lease *cache.Lease, spec *launch.Spec) error {
	store, eng, err := containerStore(ctx, api, lease, spec)
	if err != nil {
		return fmt.Errorf("launch %s on cache %s: %w", spec.Image, lease.Key(), err)
	}
	driver := dockerd.DriverFor(store, lease.StorageDriver())
	if spec.Args, err = dockerd.PinArgs(spec.Args, driver, true); err != nil {
		return fmt.Errorf("%w: %w", cache.ErrInvalid, err)
	}
	spec.Args = dockerd.PinStore(spec.Args, store, eng, true)
	var warning string
	if spec.Env, warning = dockerd.PinEnv(spec.Env, driver); warning != "" {
		fmt.Fprintf(os.Stderr, "dindstore: WARNING: %s\n", warning)
	}
	if spec.Rootless {
		return nil // its containerd lives in its data root, as its user
	}
	spec.ContainerdRoot = filepath.Join(lease.MountPath(), ".dindstore-containerd")
	return os.MkdirAll(spec.ContainerdRoot, 0o711)
}
