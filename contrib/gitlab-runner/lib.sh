# Shared by the dindstore custom-executor stages (sourced, not run).
#
# Settings, from the runner's own environment (e.g. Environment= in its systemd unit),
# never from the job's variables (a job must not pick its own cap or image):
#   DINDSTORE             the command (default: dindstore; e.g. "sudo -n dindstore")
#   DINDSTORE_DIND_IMAGE  the dind image (default: docker:dind)
#   DINDSTORE_SIZE        the cap of each slot's cache (default: 40GiB)
#   DINDSTORE_FROM        a warm cache: each job then starts on a clone of it (reflink
#                         where the host filesystem has it), removed after the job
#   DINDSTORE_STATE_DIR   per-job state: certificates, builds (default: /run/dindstore-gitlab)
#   DINDSTORE_DOCKERD_ARGS  extra flags for the inner dockerd
#   DINDSTORE_DOCKER      the host's docker CLI (default: docker; DOCKER_HOST applies)
#   DINDSTORE_DEFAULT_IMAGE  the job image when a job names none (image: in .gitlab-ci.yml)
#   DINDSTORE_HELPER_IMAGE  an image with git and gitlab-runner (GitLab's gitlab-runner-helper):
#                         the runner's own stages (sources, cache, artifacts) run in a helper
#                         container from it, as the docker executor does; without it they run
#                         in the job container, whose image then needs git and gitlab-runner
set -euo pipefail

read -r -a dindstore <<< "${DINDSTORE:-dindstore}"
read -r -a docker <<< "${DINDSTORE_DOCKER:-docker}"

# What the runner tells every stage.
: "${CUSTOM_ENV_CI_JOB_ID:?is not set: these stages are run by the custom executor of gitlab-runner}"
project=${CUSTOM_ENV_CI_PROJECT_ID:-0}
slot=${CUSTOM_ENV_CI_CONCURRENT_PROJECT_ID:-0}
job=$CUSTOM_ENV_CI_JOB_ID
case "$project$slot$job" in *[!0-9]*) echo "dindstore: project, slot and job ids must be numbers" >&2; exit "${SYSTEM_FAILURE_EXIT_CODE:-1}";; esac

# One cache per project and concurrent slot: the next job on the slot finds the last
# one's images; two jobs at once get two caches.
key="gitlab-p${project}-s${slot}"
state="${DINDSTORE_STATE_DIR:-/run/dindstore-gitlab}/job-${job}"
network="dindstore-job-${job}"
dind="dindstore-dind-${job}"
ctr="dindstore-job-${job}"
helper="dindstore-helper-${job}"

# system_failure MESSAGE: the runner's system failure (not the job's fault).
system_failure() {
  echo "dindstore: $*" >&2
  exit "${SYSTEM_FAILURE_EXIT_CODE:-1}"
}
