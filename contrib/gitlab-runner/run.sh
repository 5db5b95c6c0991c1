#!/usr/bin/env bash
# run_exec SCRIPT STAGE: every stage runs in the job container, in bash when the image
# has it, else sh. The script's failure is the build's; docker's own is the system's.
source "$(dirname "$(readlink -f "$0")")/lib.sh"
script=${1:?run_exec SCRIPT STAGE}
stage=${2:-step_script}

shell='if command -v bash >/dev/null 2>&1; then exec bash; else exec sh; fi'
"${docker[@]}" exec -i "$ctr" /bin/sh -c "$shell" < "$script" &
pid=$!
# A cancelled job: the runner sends SIGTERM (then runs cleanup). Stop the stage's
# processes in the job container, and fail the build.
trap 'kill -TERM "$pid" 2>/dev/null; "${docker[@]}" stop -t 2 "$ctr" > /dev/null 2>&1 || true; exit "${BUILD_FAILURE_EXIT_CODE:-1}"' TERM INT
set +e
wait "$pid"
status=$?
set -e
case $status in
  0) exit 0 ;;
  125|126|127) system_failure "stage $stage: docker exec in $ctr failed ($status)" ;;
  *) echo "dindstore: stage $stage exited $status" >&2; exit "${BUILD_FAILURE_EXIT_CODE:-1}" ;;
esac
