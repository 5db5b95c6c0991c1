#!/bin/sh
# Starts a dockerd (${DOCKERD:-dockerd}, with $FLAGS) on a cache, imports
# stdin as IMPORT_AS when given, prints the daemon's storage driver
# ("driver=...") and the images it holds ("image=repo:tag"), and stops it.
# Usage: inner-docker.sh MOUNT [IMPORT_AS]
set -eu
. "$(dirname "$0")/lib.sh"
start_inner "$1"
if [ $# -gt 1 ]; then $D import - "$2" >/dev/null; fi
$D info --format 'driver={{.Driver}}'
$D images --format 'image={{.Repository}}:{{.Tag}}'
