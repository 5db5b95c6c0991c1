#!/usr/bin/env bash
# cleanup_exec: after every job, also a failed or cancelled one, and after a prepare
# that failed half way: the job and helper containers, the dind container (release stops it), the
# slot's cache released, the network and the job's state. It fails when the cache
# could not be released, so that the runner's log says so.
source "$(dirname "$(readlink -f "$0")")/lib.sh"

"${docker[@]}" rm -f -v "$ctr" "$helper" > /dev/null 2>&1 || true
status=0
"${dindstore[@]}" release "$key" || status=$?
"${docker[@]}" rm -f -v "$dind" > /dev/null 2>&1 || true
"${docker[@]}" network rm "$network" > /dev/null 2>&1 || true
rm -rf -- "$state"
if (( status != 0 )); then
  echo "dindstore: release of cache $key failed (exit $status): see dindstore ls / recover" >&2
  exit "$status"
fi
