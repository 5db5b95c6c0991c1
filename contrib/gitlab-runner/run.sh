#!/usr/bin/env bash
# run_exec SCRIPT STAGE: the job's own stages (its script, after_script) run in the job
# container, the runner's (sources, cache, artifacts) in the helper container when there
# is one; in bash when the image has it, else sh. The script's failure is the build's;
# docker's own is the system's.
source "$(dirname "$(readlink -f "$0")")/lib.sh"
script=${1:?run_exec SCRIPT STAGE}
stage=${2:-step_script}

target=$ctr
case "$stage" in
  get_sources|restore_cache|download_artifacts|archive_cache*|upload_artifacts*|cleanup_file_variables)
    if [[ -n "${DINDSTORE_HELPER_IMAGE:-}" ]]; then target=$helper; fi ;;
esac
shell='if command -v bash >/dev/null 2>&1; then exec bash; else exec sh; fi'
"${docker[@]}" exec -i "$target" /bin/sh -c "$shell" < "$script" &
pid=$!
# A cancelled job: the runner sends SIGTERM (then runs cleanup). Stop the stage's
# processes in the job container, and fail the build.
trap 'kill -TERM "$pid" 2>/dev/null; "${docker[@]}" stop -t 2 "$target" > /dev/null 2>&1 || true; exit "${BUILD_FAILURE_EXIT_CODE:-1}"' TERM INT
set +e
wait "$pid"
status=$?
set -e
case $status in
  0) exit 0 ;;
  125|126|127) system_failure "stage $stage: docker exec in $target failed ($status)" ;;
  *) echo "dindstore: stage $stage exited $status" >&2; exit "${BUILD_FAILURE_EXIT_CODE:-1}" ;;
esac
