#!/bin/sh
# Builds the root filesystem of a registry-free docker:dind style image from
# this host's Debian binaries, their libraries (ldd) and busybox, with a
# hack/dind-style entrypoint under tini. Used by the integration tests only.
# Usage: [ENGINE_DIR=DIR] [EXTRA_BINS="/usr/bin/x ..."] dind-rootfs.sh DIR
# With ENGINE_DIR (make engine's .cache/engine), the engine is the current one
# (dockerd, docker-proxy, containerd, its shim and runc from there, in
# /usr/local/bin as docker:dind has them, and buildx as a CLI plugin); else Debian's 20.10.
# EXTRA_BINS are copied, with their libraries, before busybox makes its applet links
# (absolute links to /bin/busybox, which leave existing files alone).
set -eu
R=$1
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$R"
cd "$R"
mkdir -p bin sbin usr/bin usr/sbin usr/local/bin etc root run var/run var/lib/docker proc sys dev tmp
chmod 1777 tmp
ENGINE="/usr/sbin/dockerd /usr/bin/containerd /usr/bin/containerd-shim-runc-v2 /usr/sbin/runc /usr/sbin/docker-proxy"
if [ -n "${ENGINE_DIR:-}" ]; then
  E=$(cd "$ENGINE_DIR" && pwd)
  ENGINE="$E/dockerd $E/containerd $E/containerd-shim-runc-v2 $E/runc $E/docker-proxy $E/docker-buildx"
fi
BINS="$ENGINE /usr/bin/docker /usr/bin/tini-static /usr/sbin/xtables-nft-multi /usr/bin/openssl ${EXTRA_BINS:-}"
XT=/usr/lib/x86_64-linux-gnu/xtables
# shellcheck disable=SC2086 # BINS is a list of paths
sh "$HERE/copy-bins.sh" . $BINS $(ls "$XT"/*.so 2>/dev/null)
if [ -n "${ENGINE_DIR:-}" ]; then  # on PATH, not at the build host's path (EXTRA_BINS from there too)
  for b in ".$E"/*; do mv "$b" usr/local/bin/; done
  mkdir -p usr/local/libexec/docker/cli-plugins  # as docker:dind has buildx
  mv usr/local/bin/docker-buildx usr/local/libexec/docker/cli-plugins/
  rmdir -p "./${E#/}" 2>/dev/null || true  # the now empty directories of its path
fi
ln -sf tini-static usr/bin/docker-init
for x in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
  ln -sf xtables-nft-multi "usr/sbin/$x"
done
cp -a --parents /etc/ssl/openssl.cnf . && mkdir -p usr/lib/ssl && ln -sf /etc/ssl/openssl.cnf usr/lib/ssl/openssl.cnf
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
# As docker:dind's dockerd-entrypoint.sh: with DOCKER_TLS_CERTDIR set, make a CA,
# a server and a client certificate there (once) and listen with TLS on 2376.
if [ -n "${DOCKER_TLS_CERTDIR:-}" ] && [ "$1" = dockerd ]; then
  /usr/local/bin/dind-certs "$DOCKER_TLS_CERTDIR"
  s=$DOCKER_TLS_CERTDIR/server
  set -- "$@" --host=tcp://0.0.0.0:2376 --tlsverify --tlscacert "$s/ca.pem" --tlscert "$s/cert.pem" --tlskey "$s/key.pem"
fi
exec "$@"
EOS
cat > usr/local/bin/dind-certs <<'EOS'
#!/bin/sh
# dind-certs DIR: DIR/ca, DIR/server (names: docker, localhost, the hostname and the
# container's addresses) and DIR/client, each with ca.pem, cert.pem and key.pem.
set -eu
d=$1
mkdir -p "$d/ca" "$d/server" "$d/client"
[ -s "$d/client/cert.pem" ] && exit 0
cd "$d"
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=docker:dind CA" \
  -keyout ca/key.pem -out ca/cert.pem 2>/dev/null
sans="DNS:docker,DNS:localhost,DNS:$(hostname),IP:127.0.0.1"
for ip in $(ip -o -4 addr show | awk '{split($4, a, "/"); print a[1]}'); do sans="$sans,IP:$ip"; done
sign() { # sign NAME CN EXT
  openssl req -new -newkey rsa:2048 -nodes -subj "/CN=$2" -keyout "$1/key.pem" -out "$1/csr.pem" 2>/dev/null
  printf '%s\n' "$3" > "$1/ext.cnf"
  openssl x509 -req -in "$1/csr.pem" -CA ca/cert.pem -CAkey ca/key.pem -CAcreateserial -days 30 \
    -extfile "$1/ext.cnf" -out "$1/cert.pem" 2>/dev/null
  cp ca/cert.pem "$1/ca.pem"
  rm -f "$1/csr.pem" "$1/ext.cnf"
}
sign server "docker:dind server" "subjectAltName=$sans
extendedKeyUsage=serverAuth"
sign client "docker:dind client" "extendedKeyUsage=clientAuth"
chmod 0644 client/key.pem  # the job container's user reads it, as docker:dind does
EOS
chmod 755 usr/local/bin/dind-certs
chmod 755 usr/local/bin/dind
