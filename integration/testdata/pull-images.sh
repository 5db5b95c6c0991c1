#!/bin/sh
# What operators do today on a cold node: an empty inner dockerd on MOUNT
# pulls IMAGE... from a registry. Prints the pulls' wall time in seconds
# ("pull-seconds=S"), the daemon's start and stop left out.
# Usage: pull-images.sh MOUNT IMAGE...
set -eu
MOUNT=$1; shift
. "$(dirname "$0")/lib.sh"
start_inner "$MOUNT"
start=$(date +%s.%N)
for image in "$@"; do $D pull -q "$image" >/dev/null; done
end=$(date +%s.%N)
echo "pull-seconds=$(echo "$end $start" | awk '{printf "%.3f", $1 - $2}')"
