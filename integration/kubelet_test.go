//go:build linux

package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dindstore/dindstore/csi"
)

// dindPodImage is the test's dind image, as containerd knows it.
const dindPodImage = "dindstore.test/dind:it"

// dindPod is a pod whose dind container has the plugin's inline volume at
// /var/lib/docker; its inner daemon listens on a socket in a host
// directory (sockDir) for the test to reach it, and leaves the host's
// network alone (host network, no bridge, no iptables).
func dindPod(name, sockDir string, attrs map[string]string) map[string]any {
	return dindPodWith(name, sockDir, map[string]any{"csi": map[string]any{"driver": csi.DefaultDriverName, "volumeAttributes": attrs}})
}

// dindPodWith is dindPod with another source for /var/lib/docker (an
// emptyDir, for comparison).
func dindPodWith(name, sockDir string, docker map[string]any) map[string]any {
	return dindPodOf(dindPodImage, name, sockDir, docker)
}

// dindPodOf is dindPodWith of another dind image.
func dindPodOf(image, name, sockDir string, docker map[string]any) map[string]any {
	docker["name"] = "docker"
	return map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": name, "namespace": "default"},
		"spec": map[string]any{
			"nodeName": kubeNode, "hostNetwork": true, "automountServiceAccountToken": false,
			"restartPolicy": "Never", "terminationGracePeriodSeconds": 10,
			"containers": []any{map[string]any{
				"name": "dind", "image": image, "imagePullPolicy": "Never",
				"securityContext": map[string]any{"privileged": true},
				"command":         []string{"/usr/bin/docker-init", "--", "/usr/local/bin/dind"},
				"args": []string{"dockerd", "--host=unix:///run/dind/docker.sock", "--bridge=none",
					"--iptables=false", "--exec-root=/run/dind-exec"},
				"volumeMounts": []any{
					map[string]any{"name": "docker", "mountPath": "/var/lib/docker"},
					map[string]any{"name": "sock", "mountPath": "/run/dind"},
				},
			}},
			"volumes": []any{
				docker,
				map[string]any{"name": "sock", "hostPath": map[string]any{"path": sockDir, "type": "DirectoryOrCreate"}},
			},
		},
	}
}

// csiDriverObject is the CSIDriver of deploy/kubernetes, for the test.
var csiDriverObject = map[string]any{
	"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver",
	"metadata": map[string]any{"name": csi.DefaultDriverName},
	"spec": map[string]any{"attachRequired": false, "podInfoOnMount": true, "storageCapacity": true,
		"volumeLifecycleModes": []string{"Ephemeral", "Persistent"}, "fsGroupPolicy": "None"},
}

// podDocker runs the docker client against a pod's inner daemon.
func podDocker(sockDir string, args ...string) (string, error) {
	out, err := dockerStdin(filepath.Join(sockDir, "docker.sock"), nil, args...)
	return strings.TrimSpace(out), err
}

// startPluginNode starts the plugin on root, registered with a kubelet
// started after it, with the test's dind image and the CSIDriver in place.
func startPluginNode(t testing.TB, dir, root string, pluginArgs ...string) (*kubeCluster, *csiPlugin) {
	c := startKube(t, dir)
	must(t, buildDindTarOnce())
	rootfs, err := os.ReadFile(dindTar)
	must(t, err)
	c.importImage(rootfs, dindPodImage, []string{"/usr/bin/docker-init", "--", "/usr/local/bin/dind"})
	c.create("/apis/storage.k8s.io/v1/csidrivers", csiDriverObject)
	sock := filepath.Join(c.kubeletDir(), "plugins", "dindstore", "csi.sock")
	args := append([]string{"--node-id", kubeNode, "--registration-dir", filepath.Join(c.kubeletDir(), "plugins_registry")}, pluginArgs...)
	plugin := startCSIPlugin(t, root, sock, args...)
	c.startKubelet()
	waitRegistered(c)
	return c, plugin
}

// waitDocker waits for a pod's inner daemon to answer.
func waitDocker(c *kubeCluster, sockDir string) {
	c.t.Helper()
	c.waitFor("the inner daemon in "+sockDir, 2*time.Minute, func() bool {
		_, err := podDocker(sockDir, "version")
		return err == nil
	})
}

// TestCSIKubelet: the plugin under a real kubelet (v1.34, built by `make
// k8s`) with containerd as its runtime, registered through the kubelet's
// plugin watcher. A dind pod gets its cacheKey volume at /var/lib/docker:
// overlay2 on extfs, a container runs. A kubelet restart loses nothing,
// nor does a plugin killed and restarted under the running pod (its
// successor takes the lease over). A
// second pod asking for the same cacheKey stays pending, the holder pod
// named in its events; once the first is deleted (its volume unpublished)
// the second starts and sees the first one's image. With the pods gone,
// no mount and no loop device is left.
func TestCSIKubelet(t *testing.T) {
	requireSuite(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "cache-root")
	t.Cleanup(func() { cleanupCSI(t, dir, root) })
	c, plugin := startPluginNode(t, dir, root, "--default-size", "2Gi")

	attrs := map[string]string{"cacheKey": "build", "size": "2Gi"}
	sockA, sockB := filepath.Join(dir, "pod-a"), filepath.Join(dir, "pod-b")
	c.create("/api/v1/namespaces/default/pods", dindPod("dind-a", sockA, attrs))
	waitDocker(c, sockA)
	info, err := podDocker(sockA, "info", "--format", "{{.Driver}} {{json .DriverStatus}}")
	if err != nil || !strings.HasPrefix(info, "overlay2 ") || !strings.Contains(info, `["Backing Filesystem","extfs"]`) {
		t.Fatalf("docker info in the pod: %q %v, want overlay2 on extfs", info, err)
	}
	_, err = dockerStdin(filepath.Join(sockA, "docker.sock"), busyboxTar(t), "import", "-", "it-busybox")
	must(t, err)
	if out, err := podDocker(sockA, "run", "--rm", "--network", "none", "it-busybox", "echo", "ran"); err != nil || out != "ran" {
		t.Fatalf("a container in the pod: %q %v", out, err)
	}

	c.stopKubelet() // a kubelet restart in the middle
	c.startKubelet()
	time.Sleep(10 * time.Second) // a few sync rounds of the restarted kubelet
	if out, err := podDocker(sockA, "images", "-q", "it-busybox"); err != nil || out == "" {
		t.Fatalf("after the kubelet's restart the pod's daemon lost its image: %q %v", out, err)
	}
	if e := listJSON(t, root)["k8s.default.build"]; e.State != "in-use" || e.HolderPID != plugin.cmd.Process.Pid {
		t.Fatalf("after the kubelet's restart the cache is %s, held by %d", e.State, e.HolderPID)
	}
	plugin = plugin.restart() // and a plugin killed under the running pod (a crash, a DaemonSet upgrade)
	if out, err := podDocker(sockA, "images", "-q", "it-busybox"); err != nil || out == "" {
		t.Fatalf("after the plugin's restart the pod's daemon lost its image: %q %v", out, err)
	}
	if e := listJSON(t, root)["k8s.default.build"]; e.State != "in-use" || e.HolderPID != plugin.cmd.Process.Pid {
		t.Fatalf("after the plugin's restart the cache is %s, held by %d, not by the new plugin", e.State, e.HolderPID)
	}

	c.create("/api/v1/namespaces/default/pods", dindPod("dind-b", sockB, attrs))
	c.waitFor("the second pod's events to name the holder", 2*time.Minute, func() bool {
		return strings.Contains(strings.Join(c.podEvents("dind-b"), "\n"), "in use by pod default/dind-a")
	})
	if p, _ := c.pod("dind-b"); p.Status.Phase != "Pending" {
		t.Fatalf("the second pod is %s while the first holds the cache", p.Status.Phase)
	}
	c.deletePod("dind-a", "default")
	waitDocker(c, sockB)
	if out, err := podDocker(sockB, "images", "-q", "it-busybox"); err != nil || out == "" {
		t.Fatalf("the second pod does not see the first one's image: %q %v", out, err)
	}
	c.deletePod("dind-b", "default")
	if e := listJSON(t, root)["k8s.default.build"]; e.State != "idle" {
		t.Fatalf("with the pods gone the cache is %s", e.State)
	}
	currentEnginePod(t, c, dir)
	assertNoCSILeft(t, c.kubeletDir(), root)
	raw, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(raw), " "+root+"/mounts/") {
		t.Error("a cache is still mounted with the pods gone")
	}
}

// currentEnginePod: a dind pod of the current engine (when make engine
// built it) on a volume of its own lands on that engine's default, the
// containerd store, on the cache, and runs a container.
func currentEnginePod(t *testing.T, c *kubeCluster, dir string) {
	if modernEngine == "" {
		t.Log("the current engine is not built (make engine): no pod of it")
		return
	}
	rootfs, err := os.ReadFile(currentTar(t))
	must(t, err)
	const image = "dindstore.test/dind:current"
	c.importImage(rootfs, image, []string{"/usr/bin/docker-init", "--", "/usr/local/bin/dind"})
	sock := filepath.Join(dir, "pod-c")
	vol := map[string]any{"csi": map[string]any{"driver": csi.DefaultDriverName,
		"volumeAttributes": map[string]string{"cacheKey": "current", "size": "2Gi"}}}
	c.create("/api/v1/namespaces/default/pods", dindPodOf(image, "dind-c", sock, vol))
	waitDocker(c, sock)
	info, err := podDocker(sock, "info", "--format", "{{.Driver}} {{json .DriverStatus}}")
	if err != nil || !strings.HasPrefix(info, "overlayfs ") || !strings.Contains(info, "io.containerd.snapshotter.v1") {
		t.Fatalf("docker info in the current engine's pod: %q %v, want the containerd store", info, err)
	}
	_, err = dockerStdin(filepath.Join(sock, "docker.sock"), busyboxTar(t), "import", "-", "it-busybox")
	must(t, err)
	if out, err := podDocker(sock, "run", "--rm", "--network", "none", "it-busybox", "echo", "ran"); err != nil || out != "ran" {
		t.Fatalf("a container in the current engine's pod: %q %v", out, err)
	}
	c.deletePod("dind-c", "default")
}
