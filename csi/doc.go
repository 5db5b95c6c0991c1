// Package csi is dindstore's Kubernetes CSI plugin: an Identity and a Node
// service (CSI spec v1.13) that give each pod's inline ephemeral volume a
// capped, exclusive cache — a fresh loop cache of its own, a per-pod clone
// of a warm key, or a persistent cache key scoped to the pod's namespace —
// bound at the kubelet's target path through handoff.Publish, and released
// (and, for a per-pod cache, removed) at unpublish. Its Controller service
// provisions persistent volumes on the node it runs on (CreateVolume with
// that node's topology, DeleteVolume, GetCapacity: admission's room), for
// a node-local provisioner (package provision, or external-provisioner's
// --node-deployment).
//
// The plugin holds its publications' leases in its own process. Each is
// also written to a publication record under the root (csi/), so that a
// plugin that restarts takes over the leases whose targets are still
// mounted (cache.Root.Adopt) and cleans up those whose pods are gone,
// at start and periodically; a publication still bound is never touched.
//
// Volume attributes are untrusted input from whoever may create pods:
// each is bounded and validated (ParseAttributes) before anything is made,
// and none ever becomes a path.
//
// Register serves kubelet's plugin-watcher registration API
// (pluginregistration/v1) for hosts without the node-driver-registrar
// sidecar.
package csi
