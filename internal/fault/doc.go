// Package fault holds dindstore's named failure points. In a normal build
// Point is an empty function the compiler removes. Built with `-tags faults`
// (tests only), the environment variable DINDSTORE_FAULT=NAME[:MODE] makes
// the point NAME either kill the process at once with SIGKILL, as an OOM
// kill or a reboot would (MODE kill, the default), or return ErrInjected
// (MODE error).
//
// The points, in the order the operations reach them:
//
//	after-truncate  create: the sparse image file exists, not yet formatted
//	after-mkfs      create: the image is formatted, still under its temp name
//	after-record    create: the record is written (the cache is complete)
//	after-attach    run: the image is on a loop device, not yet mounted
//	after-mount     run: the cache is mounted, the command not yet started
//	while-tree-runs run: a second after the start, while the command's tree runs
//	during-grow     grow: the image file is longer, the filesystem not yet resized
//	during-rm       rm: the record is gone, the data not yet
//	during-commit   commit: the warm cache's data moved aside, the clone's not yet in
//
// The points of warm (WarmNames), reached with images to copy from the
// host's daemon:
//
//	before-warm-copy warm: the inner daemon answers, no image copied yet
//	during-warm-copy warm: the first image is in, the others not yet
//	after-warm-copy  warm: every image is in, the inner daemon not yet stopped
//
// The points of pull (PullNames), reached with a registry to pull from:
//
//	during-pull        pull: two chunks downloaded and written, the others not yet
//	before-pull-switch pull: the whole image in and checked, not yet the cache's
//	during-pull-switch pull into an existing key: its image moved aside, the new one not yet in
package fault
