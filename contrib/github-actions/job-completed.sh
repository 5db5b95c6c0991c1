#!/usr/bin/env bash
# dindstore hook for GitHub Actions self-hosted runners: job completed.
# Install it beside job-started.sh: ACTIONS_RUNNER_HOOK_JOB_COMPLETED, or a file in ARC's
# /etc/arc/hooks/job-completed.d/. It stops the job's dind container and releases its
# cache. It fails (and so fails the job) when the release could not end the lease cleanly
# — something still held the mount (75) or the filesystem was found damaged (74) — so that
# a cache left behind is noticed. Nothing started: nothing to do.
set -euo pipefail

read -r -a dindstore <<< "${DINDSTORE:-dindstore}"
state=${DINDSTORE_STATE_DIR:-/run/dindstore-gha}
slot=$(printf '%s' "${RUNNER_NAME:-runner}" | tr -c 'A-Za-z0-9._-' '-')

if [[ ! -f "$state/$slot.key" ]]; then
  exit 0
fi
key=$(< "$state/$slot.key")
"${dindstore[@]}" release "$key"
rm -f "$state/$slot.key"
# The daemon's socket directory: below the state directory, named by the key.
if [[ -n "$key" && -d "$state/$key" ]]; then
  rm -rf -- "${state:?}/${key:?}"
fi
