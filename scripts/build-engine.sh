#!/bin/sh
# Builds a current Docker engine (dockerd 29 era, containerd 2, runc 1.5, with
# docker-proxy, rootlesskit 2 and the engine's dockerd-rootless.sh) from the Go
# module proxy into DIR, unless it is there already; and buildx, as the CLI plugin
# docker-buildx, for the dind images of the tests. The Go build cache makes a
# second build take seconds. Usage: scripts/build-engine.sh DIR
set -eu
DIR=$(realpath -m "$1")
MOBY=github.com/moby/moby/v2/cmd/dockerd@v2.0.0-beta.24
CONTAINERD=v2.4.2
RUNC=github.com/opencontainers/runc@v1.5.2
ROOTLESSKIT=github.com/rootless-containers/rootlesskit/v2/cmd/rootlesskit@v2.3.6
BUILDX=github.com/docker/buildx/cmd/buildx@v0.38.2
have() {
  for b in dockerd docker-proxy containerd containerd-shim-runc-v2 runc rootlesskit dockerd-rootless.sh docker-buildx; do
    [ -x "$DIR/$b" ] || return 1
  done
}
if have; then echo "engine: up to date in $DIR"; exit 0; fi
if ! pkg-config --exists libseccomp 2>/dev/null; then
  echo "engine: installing libseccomp-dev pkg-config"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libseccomp-dev pkg-config
fi
mkdir -p "$DIR"
export GOBIN="$DIR" GOFLAGS=-mod=mod
# The module proxy and checksum database drop a connection now and then.
retry() { for i in 1 2 3; do "$@" && return 0; echo "engine: retrying ($i): $*"; sleep 5; done; "$@"; }
echo "engine: building into $DIR (the first build takes several minutes)"
retry go install "$MOBY"
retry go install "${MOBY%/dockerd@*}/docker-proxy@${MOBY##*@}"
retry env CGO_ENABLED=0 go install "$ROOTLESSKIT"
# The engine's own rootless script (it needs rootlesskit 2: --detach-netns).
src=$(go env GOMODCACHE)/github.com/moby/moby/v2@${MOBY##*@}/contrib/dockerd-rootless.sh
install -m 0755 "$src" "$DIR/dockerd-rootless.sh"
retry go install "github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD"
retry go install "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD"
retry go install -tags seccomp "$RUNC"
if [ ! -x "$DIR/docker-buildx" ]; then
  retry env CGO_ENABLED=0 go install "$BUILDX" && mv "$DIR/buildx" "$DIR/docker-buildx"
fi
have && echo "engine: built"
