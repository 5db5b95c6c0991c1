#!/bin/sh
# A CI job on a dindstore cache, for the warm-cache tests: starts a dockerd
# on the mount, checks the warm image is there, leaves a mark (a file and an
# image tag), checks it cannot see OTHER's mark, stops, and exits with CODE.
# Usage: job.sh MOUNT NAME OTHER CODE
set -eu
MOUNT=$1 NAME=$2 OTHER=$3 CODE=$4
. "$(dirname "$0")/lib.sh"
start_inner "$MOUNT"
$D images --format '{{.Repository}}:{{.Tag}}' | grep -qx 'warmme:1' || { echo "$NAME: warm image missing"; exit 91; }
touch "$MOUNT/$NAME-file"
$D tag warmme:1 "$NAME:done"
sleep 2
if [ -e "$MOUNT/$OTHER-file" ]; then echo "$NAME sees $OTHER's file"; exit 92; fi
if $D images --format '{{.Repository}}' | grep -qx "$OTHER"; then echo "$NAME sees $OTHER's image"; exit 93; fi
echo "$NAME ok"
exit "$CODE"
