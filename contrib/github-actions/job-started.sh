#!/usr/bin/env bash
# dindstore hook for GitHub Actions self-hosted runners: job started.
#
# Install it either way:
#   - as the runner's hook: ACTIONS_RUNNER_HOOK_JOB_STARTED=/opt/dindstore/job-started.sh
#     in the runner's .env;
#   - on actions-runner-controller's images, which set those variables to their own hooks:
#     copy it into /etc/arc/hooks/job-started.d/ (ARC runs every file there), and keep
#     ARC's own hooks.
# The runner runs .sh hooks as `bash -e FILE`, and a failing hook fails the job.
#
# It starts a dind container on a capped cache of its own per repository and runner
# (exclusive: a second job on the same slot waits for nothing, it gets exit 75), and hands
# the job's steps its daemon through DOCKER_HOST in $GITHUB_ENV. job-completed.sh stops
# it and releases the cache.
#
# Settings (environment): DINDSTORE (the command; e.g. "sudo -n dindstore" when the runner
# is not root), DINDSTORE_DIND_IMAGE (docker:dind), DINDSTORE_SIZE (40GiB), DINDSTORE_FROM
# (a warm cache to clone per job), DINDSTORE_STATE_DIR (/run/dindstore-gha: the socket and
# the key of each runner), DINDSTORE_DOCKERD_ARGS (extra flags for the inner dockerd).
set -euo pipefail

: "${GITHUB_REPOSITORY:?the runner sets GITHUB_REPOSITORY}"
: "${GITHUB_ENV:?the runner sets GITHUB_ENV}"
read -r -a dindstore <<< "${DINDSTORE:-dindstore}"
state=${DINDSTORE_STATE_DIR:-/run/dindstore-gha}

# A cache key: [a-z0-9][a-z0-9._-]{0,127}, from the repository and the runner's name.
raw="gha-${GITHUB_REPOSITORY}-${RUNNER_NAME:-runner}"
key=$(printf '%s' "$raw" | tr 'A-Z' 'a-z' | tr -c 'a-z0-9._-' '-' | cut -c1-128)
slot=$(printf '%s' "${RUNNER_NAME:-runner}" | tr -c 'A-Za-z0-9._-' '-')

sock="$state/$key"
mkdir -p "$sock"
args=(launch "$key" --kind loop --size "${DINDSTORE_SIZE:-40GiB}" --image "${DINDSTORE_DIND_IMAGE:-docker:dind}"
      --name "dind-$key" --detach --volume "$sock:/var/run" --env DOCKER_TLS_CERTDIR=)
if [[ -n "${DINDSTORE_FROM:-}" ]]; then
  args+=(--from "$DINDSTORE_FROM")
fi
read -r -a extra <<< "${DINDSTORE_DOCKERD_ARGS:-}"
if (( ${#extra[@]} )); then
  args+=(-- "${extra[@]}")
fi
"${dindstore[@]}" "${args[@]}" > /dev/null

printf '%s\n' "$key" > "$state/$slot.key"
printf 'DOCKER_HOST=unix://%s/docker.sock\n' "$sock" >> "$GITHUB_ENV"
echo "dindstore: job's Docker daemon on cache $key (DOCKER_HOST=unix://$sock/docker.sock)"
