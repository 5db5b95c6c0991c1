// Package cache manages dindstore's caches under one root directory: the
// keys that name them, their records (small JSON files written atomically),
// the lock that lets one inner daemon at a time use a cache, and the
// operations on a cache as a whole (create, acquire and release, grow,
// remove, list). Backing filesystems come from package volumes.
//
// Layout below the root (0700, root-owned):
//
//	records/<key>.json   the cache's record, written last on create
//	locks/<key>.lock     flock held for the whole life of the inner daemon
//	locks/<key>.owner    who holds it (pid, boot id, start time, command)
//	images/<key>.img     the sparse image of a loop cache
//	data/<key>/          the directory of a dir or vfs cache
//	mounts/<key>/        where the cache is mounted while in use
//	tmp/                 scratch space for probes
//	logs/<key>.log       what a detached holder (prepare, launch) says
//	csi/<volume>.json    the CSI plugin's publications (package csi)
//
// The lock file sits beside the cache, never inside it, so that removing or
// recreating a cache cannot drop a held lock.
//
// A lease is taken with Acquire (clearing what a dead holder left) or, by a
// process that restarted while its cache stayed in use on purpose (the CSI
// plugin under running pods), taken over with Adopt (the mount kept).
package cache
