// Package launch starts a docker:dind style container on a held cache,
// through the Docker Engine API (github.com/docker/docker/client, with API
// version negotiation; DOCKER_HOST and friends are honoured): privileged, or
// under a runtime that nests without it (Sysbox), with the cache bound at
// /var/lib/docker (or another target), labelled with the cache's key, and
// with the storage driver pinned. It waits for the container to end, tells
// when the inner daemon answers, and explains an engine's refusal in words
// an operator can act on.
package launch
