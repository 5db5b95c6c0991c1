#!/bin/sh
# build-k8s.sh DIR — build kubelet, kube-apiserver, kube-scheduler and
# kube-controller-manager (k8s.io/kubernetes, from the Go module proxy) and etcd into
# DIR/bin, once. k8s.io/kubernetes replaces its staging
# modules with ./staging paths, which `go install pkg@version` refuses, so each is built
# from a small module of its own whose go.mod replaces them with their tagged versions.
# Also external-snapshotter's snapshot-controller and csi-snapshotter sidecar (their
# images cannot be pulled here), for VolumeSnapshots of provisioned volumes.
# Cold: about 13 minutes on 2 cores (kubelet 6, kube-apiserver 2.5, scheduler and
# controller manager 1, etcd 1, the snapshotter's two 2).
set -eu
mkdir -p "$1"
dir=$(cd "$1" && pwd)   # the builds run in subdirectories
K8S_VERSION=${K8S_VERSION:-v1.34.4}
ETCD_VERSION=${ETCD_VERSION:-v3.6.13}
SNAPSHOTTER_VERSION=${SNAPSHOTTER_VERSION:-v8.4.0}
bin=$dir/bin
stamp=$bin/.built-$K8S_VERSION-$ETCD_VERSION-$SNAPSHOTTER_VERSION
[ -f "$stamp" ] && exit 0
mkdir -p "$bin" "$dir/k8s" "$dir/etcd" "$dir/snapshotter"
export CGO_ENABLED=0 GOFLAGS=-mod=mod

staging=v0${K8S_VERSION#v1}   # v1.34.4 -> v0.34.4
modfile=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
{
	echo "module dindstore.local/k8s-build"
	echo
	echo "go 1.26"
	echo
	echo "require k8s.io/kubernetes $K8S_VERSION"
	echo
	sed -n 's#^[[:space:]]*\(k8s.io/[a-z-]*\) => ./staging/src/.*#replace \1 => \1 '"$staging"'#p' "$modfile"
} > "$dir/k8s/go.mod"
cat > "$dir/k8s/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
GO
ver="-X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
ver="$ver -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=34"
(cd "$dir/k8s" && go mod tidy -e >/dev/null 2>&1 || true
	for cmd in kubelet kube-apiserver kube-scheduler kube-controller-manager; do
		[ -x "$bin/$cmd" ] && [ -f "$bin/.$cmd-$K8S_VERSION" ] && continue
		echo "building $cmd $K8S_VERSION"
		go build -trimpath -ldflags "-s -w $ver" -o "$bin/$cmd" "k8s.io/kubernetes/cmd/$cmd"
		touch "$bin/.$cmd-$K8S_VERSION"
	done)

cat > "$dir/etcd/go.mod" <<MOD
module dindstore.local/etcd-build

go 1.26

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
MOD
cat > "$dir/etcd/tools.go" <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
[ -x "$bin/etcd" ] || (cd "$dir/etcd" && go mod tidy -e >/dev/null 2>&1 || true
	echo "building etcd $ETCD_VERSION"
	go build -trimpath -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3)

# external-snapshotter replaces its client module with ./client, which its module zip
# does not hold: the build's own go.mod takes the client at the same tag.
cat > "$dir/snapshotter/go.mod" <<MOD
module dindstore.local/snapshotter-build

go 1.26

require github.com/kubernetes-csi/external-snapshotter/v8 $SNAPSHOTTER_VERSION

replace github.com/kubernetes-csi/external-snapshotter/client/v8 => github.com/kubernetes-csi/external-snapshotter/client/v8 $SNAPSHOTTER_VERSION
MOD
cat > "$dir/snapshotter/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "github.com/kubernetes-csi/external-snapshotter/v8/cmd/csi-snapshotter"
	_ "github.com/kubernetes-csi/external-snapshotter/v8/cmd/snapshot-controller"
)
GO
# Then every module it shares with the Kubernetes build is taken at that build's version, so
# that the packages compiled for kubelet and kube-apiserver serve here too (about 1.5 minutes
# less, cold); the CSI spec stays as the snapshotter asks (newer than the kubelet's).
align() {
	awk 'FNR == 1 { f++ } /^\t[a-z]/ { if (f == 1) k[$1] = $2; else if ($1 in k && k[$1] != $2 &&
		$1 != "github.com/container-storage-interface/spec") print "replace " $1 " => " $1 " " k[$1] }' \
		"$dir/k8s/go.mod" go.mod >> go.mod
}
(cd "$dir/snapshotter" && { go mod tidy -e >/dev/null 2>&1 || true; } && align && { go mod tidy -e >/dev/null 2>&1 || true; }
	for cmd in snapshot-controller csi-snapshotter; do
		[ -x "$bin/$cmd" ] && [ -f "$bin/.$cmd-$SNAPSHOTTER_VERSION" ] && continue
		echo "building $cmd $SNAPSHOTTER_VERSION"
		go build -trimpath -ldflags "-s -w -X main.version=$SNAPSHOTTER_VERSION" -o "$bin/$cmd" \
			"github.com/kubernetes-csi/external-snapshotter/v8/cmd/$cmd"
		touch "$bin/.$cmd-$SNAPSHOTTER_VERSION"
	done)
touch "$stamp"
