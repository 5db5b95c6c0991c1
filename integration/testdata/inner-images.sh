#!/bin/sh
# Prints the images a cache holds, as an inner dockerd started on it sees
# them. Usage: inner-images.sh MOUNT
set -eu
W=$(mktemp -d /tmp/dindstore-imgs.XXXXXX)
dockerd --data-root "$1" --exec-root "$W/exec" --pidfile "$W/d.pid" -H "unix://$W/d.sock" \
  --bridge=none --iptables=false --ip-masq=false >"$W/log" 2>&1 &
DPID=$!
trap 'kill -TERM $DPID 2>/dev/null; wait $DPID 2>/dev/null; rm -rf "$W"' EXIT
i=0; until docker -H "unix://$W/d.sock" version >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 300 ] || { cat "$W/log"; exit 90; }; sleep 0.1; done
docker -H "unix://$W/d.sock" images --format '{{.Repository}}:{{.Tag}}'
