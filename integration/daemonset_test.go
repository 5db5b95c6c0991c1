//go:build linux

package integration

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// pluginImage is the image deploy/kubernetes/daemonset.yaml runs, built
// here from testdata/plugin-rootfs.sh and imported under that name.
const pluginImage = "ghcr.io/dindstore/dindstore:latest"

// nodePluginPod is the pod the DaemonSet of deploy/kubernetes makes on the
// test's node (no controller manager runs here), as shipped but for what
// this machine lacks: the node's paths are the test's (the kubelet's root
// and the cache root in its directory, mounted at the same paths), the
// sidecars' images cannot be had (node-driver-registrar and livenessprobe
// are neither reachable nor on the Go module proxy), so the plugin
// registers itself and has no liveness probe, and the pod uses the host's
// network (no CNI plugin here).
func nodePluginPod(t *testing.T, c *kubeCluster, root, name, metricsAddr string) map[string]any {
	ds := manifestObjects(t, filepath.Join("..", "deploy", "kubernetes", "daemonset.yaml"))[0]
	tmpl := ds["spec"].(map[string]any)["template"].(map[string]any)
	spec := tmpl["spec"].(map[string]any)
	node := func(path string) string {
		if rest, ok := strings.CutPrefix(path, "/var/lib/kubelet"); ok {
			return c.kubeletDir() + rest
		}
		if path == "/var/lib/dindstore" {
			return root
		}
		return path
	}
	for _, v := range spec["volumes"].([]any) {
		hp := v.(map[string]any)["hostPath"].(map[string]any)
		hp["path"] = node(hp["path"].(string))
	}
	var plugin map[string]any
	for _, ctr := range spec["containers"].([]any) {
		if ctr.(map[string]any)["name"] == "dindstore" {
			plugin = ctr.(map[string]any)
		}
	}
	for _, m := range plugin["volumeMounts"].([]any) {
		if mount := m.(map[string]any); mount["name"] == "pods-dir" {
			mount["mountPath"] = node(mount["mountPath"].(string))
		}
	}
	plugin["volumeMounts"] = append(plugin["volumeMounts"].([]any),
		map[string]any{"name": "registration-dir", "mountPath": "/registration"})
	for i, a := range plugin["args"].([]any) {
		if strings.HasPrefix(a.(string), "--metrics-addr=") {
			plugin["args"].([]any)[i] = "--metrics-addr=" + metricsAddr // on the host's network: a free port
		}
	}
	plugin["args"] = append(plugin["args"].([]any), "--registration-dir=/registration",
		"--kubelet-registration-path="+node("/var/lib/kubelet/plugins/dindstore.csi.dindstore.io/csi.sock"))
	plugin["imagePullPolicy"] = "Never"
	delete(plugin, "livenessProbe")
	spec["containers"] = []any{plugin}
	spec["nodeName"], spec["hostNetwork"] = kubeNode, true
	return map[string]any{"apiVersion": "v1", "kind": "Pod", "spec": spec,
		"metadata": map[string]any{"name": name, "namespace": "dindstore", "labels": tmpl["metadata"].(map[string]any)["labels"]}}
}

// TestCSIDaemonSet: the node plugin as deploy/kubernetes runs it — in a
// privileged container of the shipped image (built here), with hostPID, the
// node's /dev, and the pods directory and cache root mounted with
// Bidirectional propagation — under the real kubelet: it registers, a dind
// pod's volume works, the plugin's pod replaced under it (a DaemonSet
// upgrade) takes the volume over, and the pod's deletion unpublishes it
// through the new one. Nothing is left mounted or attached.
func TestCSIDaemonSet(t *testing.T) {
	requireSuite(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "cache-root")
	t.Cleanup(func() { cleanupCSI(t, dir, root) })
	c := startKube(t, dir)
	must(t, buildDindTarOnce())
	rootfs, err := os.ReadFile(dindTar)
	must(t, err)
	c.importImage(rootfs, dindPodImage, []string{"/usr/bin/docker-init", "--", "/usr/local/bin/dind"})
	pluginTar := filepath.Join(dir, "plugin-rootfs.tar")
	must(t, buildRootfsTar("testdata/plugin-rootfs.sh", pluginTar, binary))
	rootfs, err = os.ReadFile(pluginTar)
	must(t, err)
	c.importImage(rootfs, pluginImage, []string{"/usr/local/bin/dindstore"})
	for _, f := range []string{"namespace.yaml", "csidriver.yaml", "rbac.yaml"} {
		for _, obj := range manifestObjects(t, filepath.Join("..", "deploy", "kubernetes", f)) {
			must(t, c.apply(obj, false))
		}
	}
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	c.startKubelet()
	c.create("/api/v1/namespaces/dindstore/pods", nodePluginPod(t, c, root, "plugin-1", metricsAddr))
	waitRegistered(c)

	sock := filepath.Join(dir, "pod-a")
	c.create("/api/v1/namespaces/default/pods", dindPod("dind-a", sock, map[string]string{"size": "2Gi"}))
	waitDocker(c, sock)
	if info, err := podDocker(sock, "info", "--format", "{{.Driver}} {{json .DriverStatus}}"); err != nil ||
		!strings.Contains(info, `["Backing Filesystem","extfs"]`) {
		t.Fatalf("docker info in the pod: %q %v, want overlay2 on extfs", info, err)
	}
	_, err = dockerStdin(filepath.Join(sock, "docker.sock"), busyboxTarTB(t), "import", "-", "it-busybox")
	must(t, err)
	if m := scrape(t, metricsAddr); !strings.Contains(m, "dindstore_caches 1") || !strings.Contains(m, "dindstore_cache_in_use{") {
		t.Fatalf("the plugin's metrics do not show the volume in use:\n%s", m)
	}

	before := holderOf(t, root)
	c.deletePod("plugin-1", "dindstore") // a DaemonSet upgrade: the old pod goes, the new one comes
	c.create("/api/v1/namespaces/dindstore/pods", nodePluginPod(t, c, root, "plugin-2", metricsAddr))
	waitRegistered(c)
	if out, err := podDocker(sock, "run", "--rm", "--network", "none", "it-busybox", "echo", "ran"); err != nil || out != "ran" {
		t.Fatalf("a container in the pod after the plugin's upgrade: %q %v", out, err)
	}
	if after := holderOf(t, root); after == before || !isPlugin(after) {
		t.Fatalf("after the upgrade the volume is held by pid %d (before: %d), not by the new plugin", after, before)
	}
	c.deletePod("dind-a", "default")
	if ls := listJSON(t, root); len(ls) != 0 {
		t.Fatalf("the pod's own volume is left: %v", ls)
	}
	c.deletePod("plugin-2", "dindstore")
	assertNoCSILeft(t, c.kubeletDir(), root)
	raw, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(raw), " "+root+"/") {
		t.Error("a cache is still mounted with the pods gone")
	}
}

// scrape reads a metrics endpoint.
func scrape(t *testing.T, addr string) string {
	resp, err := http.Get("http://" + addr + "/metrics")
	must(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	must(t, err)
	return string(b)
}

// holderOf is the pid holding the only cache of root.
func holderOf(t *testing.T, root string) int {
	ls := listJSON(t, root)
	for _, e := range ls {
		if len(ls) == 1 && e.State == "in-use" {
			return e.HolderPID
		}
	}
	t.Fatalf("want one cache in use: %v", ls)
	return 0
}

// isPlugin says whether pid is a running `dindstore csi`.
func isPlugin(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && strings.Contains(string(b), "dindstore") && strings.Contains(string(b), "\x00csi\x00")
}
