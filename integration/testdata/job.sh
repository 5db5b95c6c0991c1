#!/bin/sh
# A CI job on a dindstore cache, for the warm-cache tests: starts a dockerd
# on the mount, checks the warm image is there, leaves a mark (a file and an
# image tag), checks it cannot see OTHER's mark, stops, and exits with CODE.
# Usage: job.sh MOUNT NAME OTHER CODE
set -eu
MOUNT=$1 NAME=$2 OTHER=$3 CODE=$4
W=$(mktemp -d /tmp/dindstore-job.XXXXXX)
dockerd --data-root "$MOUNT" --exec-root "$W/exec" --pidfile "$W/d.pid" -H "unix://$W/d.sock" \
  --bridge=none --iptables=false --ip-masq=false >"$W/log" 2>&1 &
DPID=$!
stop() { kill -TERM "$DPID" 2>/dev/null || true; wait "$DPID" 2>/dev/null || true; rm -rf "$W"; }
trap stop EXIT
D="docker -H unix://$W/d.sock"
i=0; until $D version >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 300 ] || { cat "$W/log"; exit 90; }; sleep 0.1; done
$D images --format '{{.Repository}}:{{.Tag}}' | grep -qx 'warmme:1' || { echo "$NAME: warm image missing"; exit 91; }
touch "$MOUNT/$NAME-file"
$D tag warmme:1 "$NAME:done"
sleep 2
if [ -e "$MOUNT/$OTHER-file" ]; then echo "$NAME sees $OTHER's file"; exit 92; fi
if $D images --format '{{.Repository}}' | grep -qx "$OTHER"; then echo "$NAME sees $OTHER's image"; exit 93; fi
echo "$NAME ok"
exit "$CODE"
