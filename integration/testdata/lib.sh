# Sourced by the test scripts: start_inner MOUNT starts ${DOCKERD:-dockerd}
# (with $FLAGS) on MOUNT with private paths and no bridge, waits until it
# answers, and sets D to the docker command for it; it stops at exit.
start_inner() {
  W=$(mktemp -d /tmp/dindstore-inner.XXXXXX)
  # shellcheck disable=SC2086 # FLAGS is a list of flags
  "${DOCKERD:-dockerd}" --data-root "$1" --exec-root "$W/exec" --pidfile "$W/d.pid" -H "unix://$W/d.sock" \
    --bridge=none --iptables=false --ip-masq=false ${FLAGS:-} >"$W/log" 2>&1 &
  DPID=$!
  trap 'kill -TERM "$DPID" 2>/dev/null || true; wait "$DPID" 2>/dev/null || true; rm -rf "$W"' EXIT
  D="docker -H unix://$W/d.sock"
  i=0; until $D version >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 300 ] || { tail -20 "$W/log"; exit 90; }; sleep 0.1; done
}
