// Package provision is dindstore's node-local provisioner for Kubernetes:
// it provisions the claims of the dindstore StorageClass that the
// scheduler placed on this node, through the CSI plugin's Controller
// service (the calls external-provisioner makes in --node-deployment
// mode, so the two are interchangeable), and publishes the node's room as
// CSIStorageCapacity objects for the scheduler's capacity tracking.
//
// It is a binary of its own (cmd/dindstore-provisioner), beside the plugin
// in its DaemonSet: the Kubernetes client it needs stays out of the
// dindstore command, which every job starts.
package provision
