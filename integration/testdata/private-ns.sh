#!/bin/sh
# private-ns.sh KEEP CMD [ARG...]: run CMD in a mount namespace of its own
# (propagation private, or $PROPAGATION) that keeps, of the mounts below the
# temporary directory, only KEEP and what is below it.
# unshare copies every mount of the moment — those of test packages running
# at the same time included — and a copy keeps a filesystem, and the loop
# device under it, alive for as long as the namespace lives: a test's
# namespace must pin only what the test means it to.
set -eu
if [ "${1:-}" != --inside ]; then
	exec unshare --mount --propagation "${PROPAGATION:-private}" sh "$0" --inside "$@"
fi
shift
keep=$1
shift
awk -v tmp="${TMPDIR:-/tmp}/" -v keep="$keep" \
	'index($5, tmp) == 1 && $5 != keep && index($5, keep "/") != 1 { print $5 }' /proc/self/mountinfo |
	sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
exec "$@"
