#!/bin/sh
# The main job end to end: a loop-backed cache, a real dockerd on it, a
# container in it, `dindstore ls` while it runs, and everything cleaned up.
# Usage: scripts/demo.sh path/to/dindstore
set -eu
BIN=$(realpath "$1")
WORK=$(mktemp -d /tmp/dindstore-demo.XXXXXX)
ROOT=$WORK/root
cleanup() {
  "$BIN" --root "$ROOT" rm demo >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== dindstore run: a 10 GiB sparse ext4 cache, dockerd on it"
"$BIN" --root "$ROOT" run demo --kind loop --size 10GiB -- \
  "$(dirname "$0")/demo-inner.sh" "$BIN" "$ROOT" "$WORK" {mount}

echo "== after the run: the cache is idle, nothing mounted"
"$BIN" --root "$ROOT" ls
if grep -q " $ROOT/" /proc/self/mountinfo; then echo "mount left behind" >&2; exit 1; fi
echo "== demo ok"
