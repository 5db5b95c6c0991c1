#!/bin/sh
# A job on a clone of a warm cache that came through a registry: starts a
# dockerd on the mount, runs the warm image (warmme:1) in a container, and
# adds ADD_MIB MiB of new data to the cache when given.
# Usage: fleet-job.sh MOUNT [ADD_MIB]
set -eu
. "$(dirname "$0")/lib.sh"
start_inner "$1"
$D run --rm --network none warmme:1 echo ran-warm-image
if [ "${2:-0}" -gt 0 ]; then dd if=/dev/urandom of="$1/added" bs=1M count="$2" 2>/dev/null; fi
