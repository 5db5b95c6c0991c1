//go:build linux

package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dindstore/dindstore/csi"
	"github.com/dindstore/dindstore/volumes"
)

// TestKubeProvisioned: with a real kube-apiserver, kube-scheduler,
// kube-controller-manager (the ephemeral volume and persistent volume
// controllers) and kubelet, the plugin and dindstore-provisioner on a node
// whose cache root is a 3 GiB filesystem:
//   - a dind pod with a generic ephemeral volume is scheduled, gets a capped
//     cache at /var/lib/docker and runs a container; a second Node with no
//     published capacity is never chosen;
//   - the next pod's claim does not fit the capacity the node publishes:
//     it stays Pending for the scheduler's storage reason, not in
//     ContainerCreating, and is scheduled once the first pod is gone;
//   - a second pod on a claim in use is refused by the plugin (same node);
//   - a claim cloned from a warm claim starts with the warm image, and so
//     does one restored from a VolumeSnapshot of it (snapshot-controller
//     and csi-snapshotter, built by `make k8s`, as deploy/snapshots runs them);
//   - with the pods and claims deleted, no cache, mount or loop device is left.
func TestKubeProvisioned(t *testing.T) {
	requireSuite(t)
	dir := t.TempDir()
	root := filepath.Join(hostFS(t, 3<<30, volumes.Ext4), "root")
	t.Cleanup(func() { cleanupCSI(t, dir, root) })
	c, _ := startPluginNode(t, dir, root, "--default-size", "1Gi", "--max-size", "4Gi")
	for _, b := range []string{"kube-scheduler", "kube-controller-manager"} {
		if _, err := os.Stat(filepath.Join(c.bin, b)); err != nil {
			t.Skipf("skipping: %s not built; `make k8s` builds it", b)
		}
	}
	c.startScheduling()
	t.Cleanup(func() { c.dumpVolumes() })
	sock := filepath.Join(c.kubeletDir(), "plugins", "dindstore", "csi.sock")
	prov := startProcess(t, "dindstore-provisioner", provisionerBinary, "--csi-address", sock, "--node-name", kubeNode,
		"--namespace", "default", "--kubeconfig", filepath.Join(c.dir, "kubeconfig"), "--capacity-interval", "2s")
	c.create("/apis/storage.k8s.io/v1/storageclasses", manifestObjects(t, filepath.Join("..", "deploy", "kubernetes", "storageclass.yaml"))[0])
	c.addEmptyNode("it-node-empty")

	sockA, sockB := filepath.Join(dir, "pod-a"), filepath.Join(dir, "pod-b")
	c.create("/api/v1/namespaces/default/pods", scheduledDindPod("dind-a", sockA, ephemeralClaim("2Gi")))
	waitDocker(c, sockA)
	if out, err := podDocker(sockA, "run", "--rm", "--network", "none", importBusybox(t, sockA), "echo", "ran"); err != nil || out != "ran" {
		t.Fatalf("a container in the pod: %q %v", out, err)
	}
	if n := c.podNode("dind-a"); n != kubeNode {
		t.Fatalf("the pod was scheduled on %q", n)
	}
	c.create("/api/v1/namespaces/default/pods", scheduledDindPod("dind-b", sockB, ephemeralClaim("1Gi")))
	c.waitFor("the second pod to be unschedulable for storage", 2*time.Minute, func() bool {
		return strings.Contains(c.unschedulable("dind-b"), "did not have enough free storage")
	})
	if p, _ := c.pod("dind-b"); p.Status.Phase != "Pending" || c.podNode("dind-b") != "" {
		t.Fatalf("the second pod is %s on %q while the first holds the room", p.Status.Phase, c.podNode("dind-b"))
	}
	c.deletePod("dind-a", "default")
	waitDocker(c, sockB)
	c.deletePod("dind-b", "default")

	// A warm claim, filled by a pod, and a claim cloned from it.
	sockW, sockC := filepath.Join(dir, "pod-w"), filepath.Join(dir, "pod-c")
	c.create("/api/v1/namespaces/default/persistentvolumeclaims", claim("warm", "1Gi", ""))
	c.create("/api/v1/namespaces/default/pods", scheduledDindPod("dind-w", sockW, claimVolume("warm")))
	waitDocker(c, sockW)
	image := importBusybox(t, sockW)
	checkSecondConsumer(t, c, dir)
	c.deletePod("dind-w", "default")
	c.create("/api/v1/namespaces/default/persistentvolumeclaims", claim("clone", "1Gi", "warm"))
	c.create("/api/v1/namespaces/default/pods", scheduledDindPod("dind-c", sockC, claimVolume("clone")))
	waitDocker(c, sockC)
	if out, err := podDocker(sockC, "images", "-q", image); err != nil || out == "" {
		t.Fatalf("the clone lacks the warm image: %q %v", out, err)
	}
	c.deletePod("dind-c", "default")
	checkKubeSnapshot(t, c, dir, sock, image)
	for _, path := range []string{"persistentvolumeclaims/clone", "persistentvolumeclaims/warm",
		"persistentvolumeclaims/restored", "/apis/snapshot.storage.k8s.io/v1/namespaces/default/volumesnapshots/snap"} {
		if !strings.HasPrefix(path, "/") {
			path = "/api/v1/namespaces/default/" + path
		}
		if _, err := c.call("DELETE", path, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	c.waitFor("the volumes and the snapshot to be deleted", 2*time.Minute, func() bool {
		return len(listJSON(t, root)) == 0 && c.snapshotContents() == 0
	})
	if owners := c.capacityOwners(); len(owners) != 1 || owners[0] != "Node/"+kubeNode {
		t.Errorf("the capacity objects' owners: %v, want the node", owners)
	}
	prov.stop(20 * time.Second)
	if owners := c.capacityOwners(); len(owners) != 0 {
		t.Errorf("the provisioner stopped, its capacity stays: %v", owners)
	}
	assertNoCSILeft(t, c.kubeletDir(), root)
}

// checkSecondConsumer: a second pod on the warm claim (ReadWriteOnce lets
// Kubernetes put it on the same node) is refused by the plugin while the
// first pod holds the claim, and stays in ContainerCreating saying so.
func checkSecondConsumer(t *testing.T, c *kubeCluster, dir string) {
	t.Helper()
	c.create("/api/v1/namespaces/default/pods", scheduledDindPod("dind-w2", filepath.Join(dir, "pod-w2"), claimVolume("warm")))
	c.waitFor("the second consumer of the claim to be refused", 2*time.Minute, func() bool {
		return strings.Contains(strings.Join(c.podEvents("dind-w2"), "\n"), "a dindstore volume serves one pod")
	})
	if p, _ := c.pod("dind-w2"); p.Status.Phase != "Pending" {
		t.Errorf("the second consumer of a held claim is %s", p.Status.Phase)
	}
	c.deletePod("dind-w2", "default")
}

// checkKubeSnapshot: a VolumeSnapshot of the idle warm claim (taken by
// csi-snapshotter through the plugin) becomes ready, and a claim restored
// from it mounts with the warm image; a change made to the warm claim after
// the snapshot is not in the restored one.
func checkKubeSnapshot(t *testing.T, c *kubeCluster, dir, sock, image string) {
	c.startSnapshots(t, sock)
	c.create("/apis/snapshot.storage.k8s.io/v1/namespaces/default/volumesnapshots", volumeSnapshot("snap", "warm"))
	c.waitFor("the snapshot to be ready", 2*time.Minute, func() bool { return c.snapshotReady("snap") })
	sockW, sockR := filepath.Join(dir, "pod-w2"), filepath.Join(dir, "pod-r")
	c.create("/api/v1/namespaces/default/pods", scheduledDindPod("dind-w2", sockW, claimVolume("warm")))
	waitDocker(c, sockW)
	if _, err := podDocker(sockW, "tag", image, "it-after-snapshot"); err != nil {
		t.Fatal(err)
	}
	c.deletePod("dind-w2", "default")
	c.create("/api/v1/namespaces/default/persistentvolumeclaims", restoredClaim("restored", "1Gi", "snap"))
	c.create("/api/v1/namespaces/default/pods", scheduledDindPod("dind-r", sockR, claimVolume("restored")))
	waitDocker(c, sockR)
	if out, err := podDocker(sockR, "images", "-q", image); err != nil || out == "" {
		t.Fatalf("the restored claim lacks the warm image: %q %v", out, err)
	}
	if out, _ := podDocker(sockR, "images", "-q", "it-after-snapshot"); out != "" {
		t.Fatalf("the restored claim has a tag made after the snapshot")
	}
	c.deletePod("dind-r", "default")
}

// importBusybox imports the test's busybox into a pod's daemon.
func importBusybox(t *testing.T, sockDir string) string {
	_, err := dockerStdin(filepath.Join(sockDir, "docker.sock"), busyboxTar(t), "import", "-", "it-busybox")
	must(t, err)
	return "it-busybox"
}

// scheduledDindPod is dindPodWith without a node: the scheduler places it.
// It tolerates the test node's not-ready taint: the node has no CNI
// network (its pods use the host's), which keeps the kubelet from saying
// it is ready.
func scheduledDindPod(name, sockDir string, docker map[string]any) map[string]any {
	pod := dindPodWith(name, sockDir, docker)
	spec := pod["spec"].(map[string]any)
	delete(spec, "nodeName")
	spec["tolerations"] = []any{map[string]any{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"}}
	return pod
}

// ephemeralClaim is a generic ephemeral volume of the dindstore class.
func ephemeralClaim(size string) map[string]any {
	return map[string]any{"ephemeral": map[string]any{"volumeClaimTemplate": map[string]any{"spec": claimSpec(size, "")}}}
}

// claimVolume is a pod volume of a claim.
func claimVolume(name string) map[string]any {
	return map[string]any{"persistentVolumeClaim": map[string]any{"claimName": name}}
}

// claim is a claim of the dindstore class, a clone of from when set.
func claim(name, size, from string) map[string]any {
	return map[string]any{"apiVersion": "v1", "kind": "PersistentVolumeClaim",
		"metadata": map[string]any{"name": name, "namespace": "default"}, "spec": claimSpec(size, from)}
}

func claimSpec(size, from string) map[string]any {
	spec := map[string]any{"accessModes": []string{"ReadWriteOnce"}, "storageClassName": "dindstore",
		"resources": map[string]any{"requests": map[string]any{"storage": size}}}
	if from != "" {
		spec["dataSource"] = map[string]any{"kind": "PersistentVolumeClaim", "name": from}
	}
	return spec
}

// unschedulable is the scheduler's message on a pod it could not place.
func (c *kubeCluster) unschedulable(name string) string {
	var pod struct {
		Status struct {
			Conditions []struct{ Type, Status, Reason, Message string } `json:"conditions"`
		} `json:"status"`
	}
	if code, err := c.call("GET", "/api/v1/namespaces/default/pods/"+name, nil, &pod); err != nil || code != 200 {
		return ""
	}
	for _, cond := range pod.Status.Conditions {
		if cond.Type == "PodScheduled" && cond.Status == "False" {
			return cond.Reason + ": " + cond.Message
		}
	}
	return ""
}

// capacityOwners lists the owner (Kind/name) of each CSIStorageCapacity.
func (c *kubeCluster) capacityOwners() []string {
	var list struct {
		Items []struct {
			Metadata struct {
				OwnerReferences []struct{ Kind, Name string } `json:"ownerReferences"`
			} `json:"metadata"`
		} `json:"items"`
	}
	if code, err := c.call("GET", "/apis/storage.k8s.io/v1/csistoragecapacities", nil, &list); err != nil || code != 200 {
		c.t.Fatalf("listing the capacity objects: %d %v", code, err)
	}
	var owners []string
	for _, o := range list.Items {
		for _, r := range o.Metadata.OwnerReferences {
			owners = append(owners, r.Kind+"/"+r.Name)
		}
		if len(o.Metadata.OwnerReferences) == 0 {
			owners = append(owners, "none")
		}
	}
	return owners
}

// podNode is the node a pod was scheduled on ("" for none yet).
func (c *kubeCluster) podNode(name string) string {
	var pod struct {
		Spec struct {
			NodeName string `json:"nodeName"`
		} `json:"spec"`
	}
	if code, err := c.call("GET", "/api/v1/namespaces/default/pods/"+name, nil, &pod); err != nil || code != 200 {
		return ""
	}
	return pod.Spec.NodeName
}

// addEmptyNode registers a Node that could run pods (allocatable, Ready)
// but publishes no dindstore capacity: the scheduler must not choose it
// for a dindstore claim.
func (c *kubeCluster) addEmptyNode(name string) {
	c.create("/api/v1/nodes", map[string]any{"apiVersion": "v1", "kind": "Node",
		"metadata": map[string]any{"name": name, "labels": map[string]string{csi.TopologyKey: name,
			"kubernetes.io/hostname": name}}})
	now := time.Now().UTC().Format(time.RFC3339)
	status := map[string]any{"status": map[string]any{
		"allocatable": map[string]string{"cpu": "8", "memory": "16Gi", "pods": "110"},
		"capacity":    map[string]string{"cpu": "8", "memory": "16Gi", "pods": "110"},
		"conditions": []any{map[string]any{"type": "Ready", "status": "True", "reason": "KubeletReady",
			"lastHeartbeatTime": now, "lastTransitionTime": now}}}}
	if code, err := c.callPatch("/api/v1/nodes/"+name+"/status", status); err != nil || code != 200 {
		c.t.Fatalf("node %s status: %d %v", name, code, err)
	}
}

// startScheduling starts kube-scheduler and kube-controller-manager (the
// volume controllers) against the cluster, with the kubelet's kubeconfig.
func (c *kubeCluster) startScheduling() {
	kubeconfig := filepath.Join(c.dir, "kubeconfig")
	startProcess(c.t, "kube-scheduler", filepath.Join(c.bin, "kube-scheduler"), "--kubeconfig", kubeconfig,
		"--authentication-kubeconfig", kubeconfig, "--authorization-kubeconfig", kubeconfig,
		"--leader-elect=false", "--bind-address", "127.0.0.1", "--secure-port", fmt.Sprint(freePort(c.t)))
	startProcess(c.t, "kube-controller-manager", filepath.Join(c.bin, "kube-controller-manager"), "--kubeconfig", kubeconfig,
		"--authentication-kubeconfig", kubeconfig, "--authorization-kubeconfig", kubeconfig,
		"--leader-elect=false", "--bind-address", "127.0.0.1", "--secure-port", fmt.Sprint(freePort(c.t)),
		"--controllers", "persistentvolume-binder-controller,ephemeral-volume-controller,"+
			"persistentvolume-protection-controller,persistentvolumeclaim-protection-controller,garbage-collector-controller",
		"--use-service-account-credentials=false")
}

// dumpVolumes logs the claims, volumes, capacities and events when the test failed.
func (c *kubeCluster) dumpVolumes() {
	if !c.t.Failed() {
		return
	}
	for _, path := range []string{"/api/v1/persistentvolumeclaims", "/api/v1/persistentvolumes",
		"/apis/storage.k8s.io/v1/csistoragecapacities", "/api/v1/events", "/api/v1/nodes/" + kubeNode} {
		var out any
		_, err := c.call("GET", path, nil, &out)
		b, _ := json.MarshalIndent(out, "", " ")
		c.t.Logf("%s: %v\n%s", path, err, tail(string(b), 120))
	}
}
