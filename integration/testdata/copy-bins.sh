#!/bin/sh
# copy-bins.sh ROOT BIN...: copies this host's BINs into the root filesystem
# at ROOT, at the same paths, with the shared libraries they load (ldd),
# and merges ROOT's lib and lib64 into usr/ as the host's are. Used by the
# integration tests' image scripts only.
set -eu
R=$1
shift
cd "$R"
for b in "$@"; do cp -a --parents "$b" .; done
{ for b in "$@"; do ldd "$b" 2>/dev/null || true; done; } |
  awk '/=> \//{print $3} /^\t\/lib64/{print $1}' | sort -u |
  while read -r lib; do cp -L --parents "$lib" .; done
for d in lib lib64; do          # usr-merged, as the host
  if [ -d "$d" ] && [ ! -L "$d" ]; then mkdir -p "usr/$d"; cp -a "$d/." "usr/$d/"; rm -rf "$d"; fi
  ln -sfn "usr/$d" "$d"
done
