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
)

// Owner is a user and group that the mount's root directory is given to.
type Owner struct{ UID, GID int }

// begin starts the lease's dind container: the spec pinned to the cache,
// labelled, the mount's owner set, and the container recorded in the
// lease's owner record (so that a guard can stop it when the holder dies).
func (c *Container) begin(ctx context.Context, l Lease) (*launch.Container, error) {
	lease, ok := l.(*cache.Lease)
	if !ok {
		return nil, fmt.Errorf("a container needs a cache lease, got %T", l)
	}
	spec := c.Spec
	if err := PinContainer(lease, &spec); err != nil {
		return nil, err
	}
	spec.Labels = map[string]string{launch.LabelKey: lease.Key(), launch.LabelRoot: c.RootPath}
	if spec.Keep {
		spec.Labels[launch.LabelKeep] = "true"
	}
	if o := c.Owner; o != nil {
		if err := os.Lchown(lease.MountPath(), o.UID, o.GID); err != nil {
			return nil, fmt.Errorf("give %s to %d:%d: %w", lease.MountPath(), o.UID, o.GID, err)
		}
	}
	api, err := launch.NewClient()
	if err != nil {
		return nil, err
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

// PinContainer pins a dind container's image store and storage driver to
// the cache's: its recorded store, or the graph driver for a new cache
// (every dind image's engine has it); and gives /var/lib/containerd a
// directory of the cache, for images that run a containerd of their own,
// so that nothing lives outside it.
func PinContainer(lease *cache.Lease, spec *launch.Spec) error {
	store := lease.ImageStore()
	if store == "" {
		store = dockerd.StoreGraphDriver
	}
	driver := dockerd.DriverFor(store, lease.StorageDriver())
	var err error
	if spec.Args, err = dockerd.PinArgs(spec.Args, driver, true); err != nil {
		return fmt.Errorf("%w: %w", cache.ErrInvalid, err)
	}
	// Only an engine with the containerd store can have filled a cache with
	// it: it knows --feature. Any dind image's engine knows the graph driver.
	spec.Args = dockerd.PinStore(spec.Args, store, dockerd.Engine{Features: store == dockerd.StoreSnapshotter}, true)
	if err := lease.SetImageStore(store); err != nil {
		return err
	}
	var warning string
	if spec.Env, warning = dockerd.PinEnv(spec.Env, driver); warning != "" {
		fmt.Fprintf(os.Stderr, "dindstore: WARNING: %s\n", warning)
	}
	spec.ContainerdRoot = filepath.Join(lease.MountPath(), ".dindstore-containerd")
	return os.MkdirAll(spec.ContainerdRoot, 0o711)
}
