#!/bin/sh
# Runs inside `dindstore run` (see demo.sh): starts dockerd on the mount,
# imports a busybox image, runs a container, shows `dindstore ls`, stops.
# Usage: demo-inner.sh DINDSTORE ROOT WORKDIR MOUNT
set -eu
BIN=$1 ROOT=$2 WORK=$3 MOUNT=$4
SOCK=$WORK/docker.sock
D="docker -H unix://$SOCK"
dockerd --data-root "$MOUNT" --exec-root "$WORK/exec" --pidfile "$WORK/dockerd.pid" \
  -H "unix://$SOCK" --bridge=none --iptables=false --ip-masq=false \
  --containerd-namespace dindstore-demo --containerd-plugins-namespace dindstore-demo-p \
  >"$WORK/dockerd.log" 2>&1 &
DPID=$!
stop() { kill -TERM "$DPID" 2>/dev/null || true; wait "$DPID" 2>/dev/null || true; }
trap stop EXIT
i=0; until $D version >/dev/null 2>&1; do
  i=$((i+1)); [ $i -lt 300 ] || { tail -20 "$WORK/dockerd.log"; exit 1; }; sleep 0.2
done
echo "inner dockerd: $($D info --format '{{.Driver}} on {{index (index .DriverStatus 0) 1}}')"

R=$WORK/rootfs; mkdir -p "$R/bin" "$R/tmp"
cp "$(command -v busybox)" "$R/bin/busybox"
for a in sh echo ls cat; do ln -sf busybox "$R/bin/$a"; done
tar -C "$R" -c . | $D import --change 'CMD ["/bin/sh"]' - busybox:demo >/dev/null
$D run --rm --network none busybox:demo echo "hello from a container on a dindstore cache"

echo "== dindstore ls while the inner dockerd holds the cache"
"$BIN" --root "$ROOT" ls
echo "== a second daemon on the same cache is refused (exit 75):"
set +e; "$BIN" --root "$ROOT" run demo -- true; echo "exit status $?"; set -e
echo "== df of the cache"
df -h "$MOUNT"
