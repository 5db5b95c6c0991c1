// Package launch starts a docker:dind style container on a held cache,
// through the Docker Engine API (github.com/docker/docker/client, with API
// version negotiation; DOCKER_HOST and friends are honoured): privileged;
// unprivileged (Spec.Unprivileged: no host devices, UnprivilegedCaps, its own
// cgroups made writable); rootless (Spec.Rootless: a docker:dind-rootless
// style image, not privileged, at RootlessTarget); or under a runtime that
// nests by itself (Sysbox), with the cache bound at /var/lib/docker (or
// another target), labelled with the cache's key, and
// with the storage driver pinned. It waits for the container to end, tells
// when the inner daemon answers, and explains an engine's refusal in words
// an operator can act on.
package launch
