// Package proctree keeps the processes of one lease together so that they
// can be ended whole.
//
// A lease's payload is started straight into a cgroup of its own
// (CLONE_INTO_CGROUP) in the cgroup v2 hierarchy: /sys/fs/cgroup on a
// unified host, /sys/fs/cgroup/unified on a hybrid (cgroup v1) host, where
// that hierarchy carries no controllers and nothing else moves processes
// out of it. Cgroup membership is inherited by every fork and survives
// re-parenting, daemonising and the holder's death, so the group still
// names the lease's processes after a SIGKILL of the holder. Container
// runtimes (runc) move container processes into cgroups of their own; those
// are found as descendants (by parent pid) of the group's processes, since
// the runtime's shim, a member, stays their parent.
//
// Ending a group writes cgroup.kill (which also catches processes forked
// meanwhile) and SIGKILLs the descendants outside it, until nothing is left.
package proctree
