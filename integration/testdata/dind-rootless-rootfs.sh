#!/bin/sh
# Builds the root filesystem of a registry-free docker:dind-rootless style image: the
# dind image of dind-rootfs.sh plus Debian's rootlesskit, uidmap (newuidmap/newgidmap,
# setuid), slirp4netns, iproute2's ip and nsenter, docker.io's dockerd-rootless.sh, and a
# user "rootless" (1000:1000) with subordinate ids. Used by the integration tests only.
# With ENGINE_DIR (make engine's .cache/engine): the current engine, with its own
# dockerd-rootless.sh and rootlesskit 2 (the script needs --detach-netns; Debian's is 1.1).
# Usage: [ENGINE_DIR=DIR] dind-rootless-rootfs.sh DIR
set -eu
R=$1
RK="/usr/bin/rootlesskit /usr/bin/rootlesskit-docker-proxy"
SCRIPT=/usr/share/docker.io/contrib/dockerd-rootless.sh
if [ -n "${ENGINE_DIR:-}" ]; then
  RK="$(cd "$ENGINE_DIR" && pwd)/rootlesskit"
  SCRIPT="$ENGINE_DIR/dockerd-rootless.sh"
fi
# rootlesskit sets up slirp4netns's tap device with nsenter and iproute2's ip (busybox's
# has no tuntap; /usr/bin/ip comes before busybox's /sbin/ip on PATH).
EXTRA_BINS="$RK /usr/bin/newuidmap /usr/bin/newgidmap
            /usr/bin/slirp4netns /usr/bin/nsenter /usr/bin/ip" sh "$(dirname "$0")/dind-rootfs.sh" "$R"
cd "$R"
cp "$SCRIPT" usr/local/bin/dockerd-rootless.sh
printf 'rootless:x:1000:1000:rootless:/home/rootless:/bin/sh\n' >> etc/passwd
printf 'rootless:x:1000:\n' >> etc/group
printf 'rootless:100000:65536\n' > etc/subuid
printf 'rootless:100000:65536\n' > etc/subgid
mkdir -p home/rootless/.local/share/docker run/user/1000
chown -R 1000:1000 home/rootless run/user/1000
chmod 700 run/user/1000
cat > usr/local/bin/dind-rootless <<'EOS'
#!/bin/sh
# As docker:dind-rootless's entrypoint: dockerd (or its flags) runs through
# dockerd-rootless.sh (rootlesskit, slirp4netns) as the image's user.
set -e
[ $# -gt 0 ] || set -- dockerd
case "$1" in -*) set -- dockerd "$@";; esac
if [ "$1" = dockerd ]; then shift; exec dockerd-rootless.sh "$@"; fi
exec "$@"
EOS
chmod 755 usr/local/bin/dind-rootless usr/local/bin/dockerd-rootless.sh
