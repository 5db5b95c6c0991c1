package launch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/dindstore/dindstore/dockerd"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
)

// versionEnv is the variable docker:dind images set to their engine's
// version.
const versionEnv = "DOCKER_VERSION"

// ImageEngine tells which engine a dind image runs, without starting its
// daemon on a cache: from the image's DOCKER_VERSION (docker:dind sets
// it), else by running `dockerd --version` and `dockerd --help` in a
// throwaway container of the image (no cache, no privileges, removed).
func ImageEngine(ctx context.Context, api client.APIClient, image string) (dockerd.Engine, error) {
	img, err := api.ImageInspect(ctx, image)
	if err != nil {
		return dockerd.Engine{}, fmt.Errorf("inspect image %s: %w", image, err)
	}
	if img.Config != nil {
		for _, e := range img.Config.Env {
			if v, ok := strings.CutPrefix(e, versionEnv+"="); ok && dockerd.ParseMajor(v) > 0 {
				return dockerd.EngineOfVersion(v), nil
			}
		}
	}
	out, err := runOnce(ctx, api, image, []string{"sh", "-c", "dockerd --version; dockerd --help 2>&1 | grep -c -- --feature"})
	if err != nil {
		return dockerd.Engine{}, fmt.Errorf("ask the dockerd of image %s its version: %w", image, err)
	}
	version, features, _ := strings.Cut(strings.TrimSpace(out), "\n")
	return dockerd.Engine{Major: dockerd.ParseMajor(version), Features: strings.TrimSpace(features) != "0"}, nil
}

// runOnce runs cmd (as the entrypoint) in a throwaway container of image,
// with no network, and returns its output; the container is removed.
func runOnce(ctx context.Context, api client.APIClient, image string, cmd []string) (_ string, retErr error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cfg := &container.Config{Image: image, Entrypoint: cmd[:1], Cmd: cmd[1:], User: "0"}
	created, err := api.ContainerCreate(ctx, cfg, &container.HostConfig{NetworkMode: "none"}, nil, nil, "")
	if err != nil {
		return "", err
	}
	defer func() {
		rerr := api.ContainerRemove(context.WithoutCancel(ctx), created.ID, container.RemoveOptions{Force: true})
		retErr = errors.Join(retErr, rerr)
	}()
	status, errs := api.ContainerWait(ctx, created.ID, container.WaitConditionNextExit)
	if err := api.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		return "", err
	}
	select {
	case err := <-errs:
		return "", err
	case <-status:
	}
	rc, err := api.ContainerLogs(ctx, created.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return "", err
	}
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(rc, 1<<16))
	return stripStreamHeaders(raw), err
}
