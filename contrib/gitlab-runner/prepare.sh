#!/usr/bin/env bash
# prepare_exec: the job's inner Docker daemon (a dind container on the slot's cache,
# with TLS) and the job container beside it on a network of the job's own (and, with
# DINDSTORE_HELPER_IMAGE, a helper container for the runner's own stages).
source "$(dirname "$(readlink -f "$0")")/lib.sh"

image=${CUSTOM_ENV_CI_JOB_IMAGE:-${DINDSTORE_DEFAULT_IMAGE:-}}
[[ -n "$image" ]] || system_failure "the job names no image (image: in .gitlab-ci.yml) and DINDSTORE_DEFAULT_IMAGE is not set"
mkdir -p "$state/certs" "$state/builds" "$state/cache"

"${docker[@]}" network create "$network" > /dev/null || system_failure "create network $network"

args=(launch "$key" --kind loop --size "${DINDSTORE_SIZE:-40GiB}" --image "${DINDSTORE_DIND_IMAGE:-docker:dind}"
      --name "$dind" --network "$network" --network-alias docker --detach
      --env DOCKER_TLS_CERTDIR=/certs --volume "$state/certs:/certs")
[[ -z "${DINDSTORE_FROM:-}" ]] || args+=(--from "$DINDSTORE_FROM")
read -r -a extra <<< "${DINDSTORE_DOCKERD_ARGS:-}"
(( ${#extra[@]} == 0 )) || args+=(-- "${extra[@]}")
echo "dindstore: starting the job's Docker daemon on cache $key"
"${dindstore[@]}" "${args[@]}" > "$state/dind.id" || system_failure "dindstore launch $key failed (see above)"

# The daemon answered on its socket; the client certificate is there by now.
for _ in $(seq 100); do [[ -s "$state/certs/client/cert.pem" ]] && break; sleep 0.1; done
[[ -s "$state/certs/client/cert.pem" ]] || system_failure "no client certificate in $state/certs/client"

ip=$("${docker[@]}" inspect -f "{{(index .NetworkSettings.Networks \"$network\").IPAddress}}" "$dind")
"${docker[@]}" create --name "$ctr" --network "$network" --add-host "docker:$ip" \
  --label io.dindstore.gitlab-job="$job" \
  -e DOCKER_HOST=tcp://docker:2376 -e DOCKER_TLS_VERIFY=1 -e DOCKER_CERT_PATH=/certs/client \
  -v "$state/certs/client:/certs/client:ro" -v "$state/builds:/builds" -v "$state/cache:/cache" \
  --entrypoint /bin/sh "$image" -c 'trap "exit 0" TERM; while :; do sleep 3600 & wait $!; done' > /dev/null \
  || system_failure "create the job container from $image"
"${docker[@]}" start "$ctr" > /dev/null || system_failure "start the job container"
echo "dindstore: job container $ctr from $image, DOCKER_HOST=tcp://docker:2376 (TLS)"

# The runner's own stages (sources, cache, artifacts) in a helper container that shares
# /builds and /cache, as GitLab's docker executor does.
if [[ -n "${DINDSTORE_HELPER_IMAGE:-}" ]]; then
  "${docker[@]}" create --name "$helper" --network "$network" --label io.dindstore.gitlab-job="$job" \
    -v "$state/builds:/builds" -v "$state/cache:/cache" \
    --entrypoint /bin/sh "$DINDSTORE_HELPER_IMAGE" -c 'trap "exit 0" TERM; while :; do sleep 3600 & wait $!; done' > /dev/null \
    || system_failure "create the helper container from $DINDSTORE_HELPER_IMAGE"
  "${docker[@]}" start "$helper" > /dev/null || system_failure "start the helper container"
fi
