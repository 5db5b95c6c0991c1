// Package volumes makes and mounts the filesystems that back an inner
// /var/lib/docker. There are three backing kinds and a chooser:
//
//   - loop: a sparse image file, formatted ext4 (or xfs) on the file itself so
//     that it stays sparse, attached to a loop device with autoclear and
//     direct I/O, and mounted noatime. It has a hard size cap and allocates on
//     the host only what is written; FITRIM at unmount gives back what the
//     inner daemon deleted.
//   - dir: a host directory, bind-mounted, on a filesystem where a real
//     overlay mount works (ext4, xfs with ftype=1, btrfs). No cap.
//   - vfs: a plain directory, bind-mounted; the inner daemon must run with
//     --storage-driver vfs. The last resort.
//   - auto: loop when a loop device can really be attached, else dir when
//     an overlay mount really works there, else vfs.
//
// The package knows nothing of cache keys, records or locks (package cache
// does); it is given paths and sizes.
package volumes
