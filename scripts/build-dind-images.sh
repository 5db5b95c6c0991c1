#!/bin/sh
# Builds, unless they are there already, the root filesystems (tarballs) of two
# registry-free dind images of the current engine (make engine's ENGINE_DIR), shaped
# like docker:dind and docker:dind-rootless: DIR/dind-current.tar and
# DIR/dind-rootless-current.tar. Import one with
#   docker import --change 'ENTRYPOINT ["/usr/bin/docker-init","--","/usr/local/bin/dind"]' \
#     --change 'CMD ["dockerd","--host=unix:///var/run/docker.sock"]' DIR/dind-current.tar IMAGE
# (the integration tests do, and their rootless variant as integration/nested_harness_test.go
# says). Usage: scripts/build-dind-images.sh DIR ENGINE_DIR
set -eu
DIR=$(realpath -m "$1")
ENGINE_DIR=$(realpath "$2")
HERE=$(cd "$(dirname "$0")/../integration/testdata" && pwd)
mkdir -p "$DIR"
build() { # build SCRIPT TAR
  # Up to date unless the engine or a rootfs script changed since it was built.
  if [ -s "$2" ] && [ -z "$(find "$ENGINE_DIR" "$HERE" -newer "$2" 2>/dev/null | head -1)" ]; then
    echo "dind: $2 up to date"; return 0
  fi
  tmp=$(mktemp -d "$DIR/rootfs.XXXXXX")
  ENGINE_DIR=$ENGINE_DIR sh "$HERE/$1" "$tmp"
  tar -C "$tmp" -cf "$2.tmp" . && mv "$2.tmp" "$2"
  rm -rf "$tmp"
  echo "dind: built $2"
}
build dind-rootfs.sh "$DIR/dind-current.tar"
build dind-rootless-rootfs.sh "$DIR/dind-rootless-current.tar"
