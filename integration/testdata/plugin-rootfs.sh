#!/bin/sh
# Builds the root filesystem of the dindstore image (what deploy/Dockerfile
# makes, registry-free): the static binary and the filesystem tools it runs,
# from this host. Used by the integration tests only.
# Usage: plugin-rootfs.sh DIR BINARY
set -eu
R=$1
BIN=$2
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$R"
cd "$R"
mkdir -p usr/local/bin etc proc sys dev tmp run var/lib/dindstore
chmod 1777 tmp
sh "$HERE/copy-bins.sh" . /usr/sbin/mkfs.ext4 /usr/sbin/mke2fs /usr/sbin/e2fsck /usr/sbin/resize2fs \
  /usr/sbin/mkfs.xfs /usr/sbin/xfs_repair /usr/sbin/xfs_growfs
cp /etc/mke2fs.conf etc/
cp "$BIN" usr/local/bin/dindstore
