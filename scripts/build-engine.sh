#!/bin/sh
# Builds a current Docker engine (dockerd 29 era, containerd 2, runc 1.5) from
# the Go module proxy into DIR, unless it is there already. The Go build cache
# makes a second build take seconds. Usage: scripts/build-engine.sh DIR
set -eu
DIR=$(realpath -m "$1")
MOBY=github.com/moby/moby/v2/cmd/dockerd@v2.0.0-beta.24
CONTAINERD=v2.4.2
RUNC=github.com/opencontainers/runc@v1.5.2
have() { [ -x "$DIR/dockerd" ] && [ -x "$DIR/containerd" ] && [ -x "$DIR/containerd-shim-runc-v2" ] && [ -x "$DIR/runc" ]; }
if have; then echo "engine: up to date in $DIR"; exit 0; fi
if ! pkg-config --exists libseccomp 2>/dev/null; then
  echo "engine: installing libseccomp-dev pkg-config"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libseccomp-dev pkg-config
fi
mkdir -p "$DIR"
export GOBIN="$DIR" GOFLAGS=-mod=mod
echo "engine: building into $DIR (the first build takes several minutes)"
go install "$MOBY"
go install "github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD"
go install "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD"
go install -tags seccomp "$RUNC"
have && echo "engine: built"
