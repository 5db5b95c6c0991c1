#!/bin/sh
# Builds the root filesystem of a registry-free docker:dind style image from
# this host's Debian binaries, their libraries (ldd) and busybox, with a
# hack/dind-style entrypoint under tini. Used by the integration tests only.
# Usage: dind-rootfs.sh DIR
set -eu
R=$1
mkdir -p "$R"
cd "$R"
mkdir -p bin sbin usr/bin usr/sbin usr/local/bin etc root run var/run var/lib/docker proc sys dev tmp
chmod 1777 tmp
BINS="/usr/sbin/dockerd /usr/bin/containerd /usr/bin/containerd-shim-runc-v2 /usr/sbin/runc /usr/bin/docker
      /usr/sbin/docker-proxy /usr/bin/tini-static /usr/sbin/xtables-nft-multi"
for b in $BINS; do cp -a --parents "$b" .; done
ln -sf tini-static usr/bin/docker-init
for x in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
  ln -sf xtables-nft-multi "usr/sbin/$x"
done
XT=/usr/lib/x86_64-linux-gnu/xtables
[ -d "$XT" ] && cp -a --parents "$XT" .
{ for b in $BINS "$XT"/*.so; do ldd "$b" 2>/dev/null || true; done; } |
  awk '/=> \//{print $3} /^\t\/lib64/{print $1}' | sort -u |
  while read -r lib; do cp -L --parents "$lib" .; done
for d in lib lib64; do          # usr-merged, as the host
  if [ -d "$d" ] && [ ! -L "$d" ]; then mkdir -p "usr/$d"; cp -a "$d/." "usr/$d/"; rm -rf "$d"; fi
  ln -sfn "usr/$d" "$d"
done
cp "$(command -v busybox)" bin/busybox
chroot . /bin/busybox --install -s
printf 'root:x:0:0:root:/root:/bin/sh\n' > etc/passwd
printf 'root:x:0:\ndocker:x:999:\n' > etc/group
printf 'hosts: files dns\n' > etc/nsswitch.conf
cat > usr/local/bin/dind <<'EOS'
#!/bin/sh
# As moby's hack/dind: prepare the container, then run the command (dockerd).
set -e
export container=docker
if [ -d /sys/kernel/security ] && ! mountpoint -q /sys/kernel/security; then
  mount -t securityfs none /sys/kernel/security || true
fi
mountpoint -q /tmp || mount -t tmpfs none /tmp
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  mkdir -p /sys/fs/cgroup/init
  xargs -rn1 < /sys/fs/cgroup/cgroup.procs > /sys/fs/cgroup/init/cgroup.procs || :
  sed -e 's/ / +/g' -e 's/^/+/' < /sys/fs/cgroup/cgroup.controllers > /sys/fs/cgroup/cgroup.subtree_control
fi
mount --make-rshared /
[ $# -gt 0 ] || set -- dockerd --host=unix:///var/run/docker.sock
case "$1" in -*) set -- dockerd --host=unix:///var/run/docker.sock "$@";; esac
exec "$@"
EOS
chmod 755 usr/local/bin/dind
