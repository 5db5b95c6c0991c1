//go:build linux

package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// snapshotCRDs are external-snapshotter's CRDs, from its client module
// (a dependency of dindstore's provisioner, so in the module cache).
func snapshotCRDs(t *testing.T) []map[string]any {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/kubernetes-csi/external-snapshotter/client/v8").Output()
	if err != nil {
		t.Fatalf("finding external-snapshotter's client module: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "config", "crd")
	var objs []map[string]any
	for _, kind := range []string{"volumesnapshotclasses", "volumesnapshotcontents", "volumesnapshots"} {
		objs = append(objs, manifestObjects(t, filepath.Join(dir, "snapshot.storage.k8s.io_"+kind+".yaml"))...)
	}
	return objs
}

// installSnapshotAPI creates the snapshot CRDs and waits until they serve.
func (c *kubeCluster) installSnapshotAPI(t *testing.T) {
	for _, crd := range snapshotCRDs(t) {
		c.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
	}
	c.waitFor("the snapshot API to serve", time.Minute, func() bool {
		code, err := c.call("GET", "/apis/snapshot.storage.k8s.io/v1/volumesnapshotclasses", nil, nil)
		return err == nil && code == 200
	})
}

// startSnapshots installs the snapshot API and runs snapshot-controller
// (distributed snapshotting) and csi-snapshotter for this node against the
// plugin at sock, as deploy/snapshots does; the class is deploy/snapshots'.
func (c *kubeCluster) startSnapshots(t *testing.T, sock string) {
	for _, b := range []string{"snapshot-controller", "csi-snapshotter"} {
		if _, err := os.Stat(filepath.Join(c.bin, b)); err != nil {
			t.Skipf("skipping: %s not built; `make k8s` builds it", b)
		}
	}
	c.installSnapshotAPI(t)
	kubeconfig := filepath.Join(c.dir, "kubeconfig")
	startProcess(t, "snapshot-controller", filepath.Join(c.bin, "snapshot-controller"), "--kubeconfig", kubeconfig,
		"--enable-distributed-snapshotting", "--retry-interval-max", "5s")
	startProcessEnv(t, []string{"NODE_NAME=" + kubeNode}, "csi-snapshotter", filepath.Join(c.bin, "csi-snapshotter"),
		"--kubeconfig", kubeconfig, "--csi-address", sock, "--node-deployment", "--retry-interval-max", "5s")
	class := manifestObjects(t, filepath.Join("..", "deploy", "snapshots", "volumesnapshotclass.yaml"))[0]
	c.create("/apis/snapshot.storage.k8s.io/v1/volumesnapshotclasses", class)
}

// volumeSnapshot is a VolumeSnapshot of a claim, of the dindstore class.
func volumeSnapshot(name, claim string) map[string]any {
	return map[string]any{"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
		"metadata": map[string]any{"name": name, "namespace": "default"},
		"spec": map[string]any{"volumeSnapshotClassName": "dindstore",
			"source": map[string]any{"persistentVolumeClaimName": claim}}}
}

// restoredClaim is a claim of the dindstore class restored from a snapshot.
func restoredClaim(name, size, snapshot string) map[string]any {
	obj := claim(name, size, "")
	obj["spec"].(map[string]any)["dataSource"] = map[string]any{"apiGroup": "snapshot.storage.k8s.io",
		"kind": "VolumeSnapshot", "name": snapshot}
	return obj
}

// snapshotReady tells a VolumeSnapshot ready to use.
func (c *kubeCluster) snapshotReady(name string) bool {
	var snap struct {
		Status struct {
			ReadyToUse bool `json:"readyToUse"`
		} `json:"status"`
	}
	code, err := c.call("GET", "/apis/snapshot.storage.k8s.io/v1/namespaces/default/volumesnapshots/"+name, nil, &snap)
	return err == nil && code == 200 && snap.Status.ReadyToUse
}

// snapshotContents counts the cluster's VolumeSnapshotContents.
func (c *kubeCluster) snapshotContents() int {
	var list struct {
		Items []any `json:"items"`
	}
	if code, err := c.call("GET", "/apis/snapshot.storage.k8s.io/v1/volumesnapshotcontents", nil, &list); err != nil || code != 200 {
		return -1
	}
	return len(list.Items)
}
