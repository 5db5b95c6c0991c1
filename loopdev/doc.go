// Package loopdev attaches regular files to Linux loop devices through the
// kernel's ioctl interface (golang.org/x/sys/unix), without running losetup.
//
// Allocation is race-proof: an exclusive flock on /dev/loop-control is held
// around LOOP_CTL_GET_FREE and the configuration of the device, the free
// device is asked for again on every try, and transient errors (EBUSY,
// EAGAIN, ENXIO, ENOENT) are retried with a bounded, jittered backoff, as
// util-linux and systemd do. A missing /dev/loopN node (inside containers /dev
// is often a snapshot) is created from /sys/block/loopN/dev.
//
// Every device is attached with LO_FLAGS_AUTOCLEAR, so the kernel detaches it
// when its last user (usually a mount) goes away. Devices are tagged through
// lo_file_name so that they can be listed later, and each attach verifies that
// the device is backed by the very file (device and inode) it was asked for.
package loopdev
