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

	"sigs.k8s.io/yaml"
)

// apiPaths are where the API takes the kinds deploy/kubernetes holds.
var apiPaths = map[string]string{
	"Namespace":                        "/api/v1/namespaces",
	"ServiceAccount":                   "/api/v1/namespaces/%s/serviceaccounts",
	"Pod":                              "/api/v1/namespaces/%s/pods",
	"DaemonSet":                        "/apis/apps/v1/namespaces/%s/daemonsets",
	"CSIDriver":                        "/apis/storage.k8s.io/v1/csidrivers",
	"StorageClass":                     "/apis/storage.k8s.io/v1/storageclasses",
	"ClusterRole":                      "/apis/rbac.authorization.k8s.io/v1/clusterroles",
	"ClusterRoleBinding":               "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
	"ValidatingAdmissionPolicy":        "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies",
	"ValidatingAdmissionPolicyBinding": "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings",
	"VolumeSnapshotClass":              "/apis/snapshot.storage.k8s.io/v1/volumesnapshotclasses",
}

// manifestObjects reads the objects of a YAML file (documents split on
// "---"), as JSON maps.
func manifestObjects(t *testing.T, path string) []map[string]any {
	raw, err := os.ReadFile(path)
	must(t, err)
	var objs []map[string]any
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if obj != nil {
			objs = append(objs, obj)
		}
	}
	return objs
}

// apply creates an object; dryRun asks the API to check it all the way
// (validation, defaulting, admission) without keeping it.
func (c *kubeCluster) apply(obj map[string]any, dryRun bool) error {
	kind, _ := obj["kind"].(string)
	path, ok := apiPaths[kind]
	if !ok {
		return fmt.Errorf("kind %q is not one the test knows", kind)
	}
	if strings.Contains(path, "%s") {
		ns := "default"
		if md, _ := obj["metadata"].(map[string]any); md["namespace"] != nil {
			ns = md["namespace"].(string)
		}
		path = fmt.Sprintf(path, ns)
	}
	if dryRun {
		path += "?dryRun=All"
	}
	_, err := c.call("POST", path, obj, nil)
	return err
}

// TestDeployManifests: deploy/kubernetes is accepted by a real
// kube-apiserver (v1.34): every object created, the examples checked with
// a server-side dry run (the ARC example's pod template as a pod), and the
// admission policy denies what it says it denies — a size above its cap, a
// cacheKey or a commit in a namespace not labelled for them — and admits
// the rest. The overlays' objects and patched DaemonSets are accepted too.
func TestDeployManifests(t *testing.T) {
	requireSuite(t)
	c := startControlPlane(t, t.TempDir())
	dir := filepath.Join("..", "deploy", "kubernetes")
	for _, f := range []string{"namespace.yaml", "csidriver.yaml", "storageclass.yaml", "rbac.yaml", "daemonset.yaml", "admission-policy.yaml"} {
		for _, obj := range manifestObjects(t, filepath.Join(dir, f)) {
			if err := c.apply(obj, false); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
		}
	}
	ephemeral := manifestObjects(t, filepath.Join(dir, "examples", "dind-pod-ephemeral.yaml"))[0]
	if err := c.apply(ephemeral, true); err != nil {
		t.Fatalf("the generic ephemeral volume example: %v", err)
	}
	pod := manifestObjects(t, filepath.Join(dir, "examples", "dind-pod.yaml"))[0]
	labelNamespace(c, "default", "dindstore.io/cache-keys", "allowed")
	c.waitFor("the example pod to be admitted", 30*time.Second, func() bool { return c.apply(pod, true) == nil })
	arc := manifestObjects(t, filepath.Join(dir, "examples", "arc-runner-scale-set-values.yaml"))[0]
	arcPod := map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": "arc-runner"},
		"spec": arc["template"].(map[string]any)["spec"]}
	if err := c.apply(arcPod, true); err != nil {
		t.Fatalf("the ARC example's pod template: %v", err)
	}
	arcEph := manifestObjects(t, filepath.Join(dir, "examples", "arc-runner-scale-set-ephemeral-values.yaml"))[0]
	arcEphPod := map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": "arc-runner-ephemeral"},
		"spec": arcEph["template"].(map[string]any)["spec"]}
	if err := c.apply(arcEphPod, true); err != nil {
		t.Fatalf("the ARC example with a generic ephemeral volume: %v", err)
	}
	tooBig := withAttributes(t, pod, map[string]any{"size": "60Gi"})
	c.waitFor("the policy to deny a size above its cap", 30*time.Second, func() bool {
		err := c.apply(tooBig, true)
		return err != nil && strings.Contains(err.Error(), "at most 50Gi")
	})
	if err := c.apply(withAttributes(t, pod, map[string]any{"from": "warm", "commit": "true"}), true); err == nil ||
		!strings.Contains(err.Error(), "committing") {
		t.Errorf("a commit in a namespace not labelled for it: %v", err)
	}
	if err := c.apply(withAttributes(t, pod, map[string]any{"from": "warm", "size": "50Gi"}), true); err != nil {
		t.Errorf("a clone within the cap: %v", err)
	}
	labelNamespace(c, "default", "dindstore.io/cache-keys", "denied")
	c.waitFor("a cacheKey to be denied in a namespace not labelled for it", 30*time.Second, func() bool {
		return c.apply(pod, true) != nil
	})
	checkOverlays(t, c)
}

// checkOverlays: deploy/snapshots' objects are created (with the snapshot
// API installed), and the DaemonSet each overlay patches is accepted.
func checkOverlays(t *testing.T, c *kubeCluster) {
	c.installSnapshotAPI(t)
	for _, f := range []string{"rbac.yaml", "volumesnapshotclass.yaml"} {
		for _, obj := range manifestObjects(t, filepath.Join("..", "deploy", "snapshots", f)) {
			if err := c.apply(obj, false); err != nil {
				t.Fatalf("deploy/snapshots/%s: %v", f, err)
			}
		}
	}
	ds := manifestObjects(t, filepath.Join("..", "deploy", "kubernetes", "daemonset.yaml"))[0]
	for _, overlay := range []string{"snapshots/snapshotter.yaml", "sidecar-provisioner/provisioner.yaml"} {
		patch := manifestObjects(t, filepath.Join("..", "deploy", overlay))[0]
		patched := patchContainers(t, ds, patch)
		patched["metadata"].(map[string]any)["name"] = "dindstore-csi-node-" + strings.Split(overlay, "/")[0]
		if err := c.apply(patched, true); err != nil {
			t.Errorf("the DaemonSet with deploy/%s: %v", overlay, err)
		}
	}
}

// patchContainers is a copy of a DaemonSet with a patch's containers merged
// in as a strategic merge patch does: by name, a null field removed.
func patchContainers(t *testing.T, ds, patch map[string]any) map[string]any {
	b, err := json.Marshal(ds)
	must(t, err)
	var out map[string]any
	must(t, json.Unmarshal(b, &out))
	containers := func(obj map[string]any) []any {
		return obj["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)
	}
	list := containers(out)
next:
	for _, pc := range containers(patch) {
		pc := pc.(map[string]any)
		for _, c := range list {
			if c := c.(map[string]any); c["name"] == pc["name"] {
				for k, v := range pc {
					if v == nil {
						delete(c, k)
					} else {
						c[k] = v
					}
				}
				continue next
			}
		}
		list = append(list, pc)
	}
	out["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"] = list
	return out
}

// withAttributes copies a pod with its dindstore volume's attributes
// replaced.
func withAttributes(t *testing.T, pod map[string]any, attrs map[string]any) map[string]any {
	b, err := json.Marshal(pod)
	must(t, err)
	var cp map[string]any
	must(t, json.Unmarshal(b, &cp))
	vol := cp["spec"].(map[string]any)["volumes"].([]any)[0].(map[string]any)
	vol["csi"].(map[string]any)["volumeAttributes"] = attrs
	return cp
}

// labelNamespace sets a label on a namespace.
func labelNamespace(c *kubeCluster, ns, key, value string) {
	c.t.Helper()
	if _, err := c.callPatch("/api/v1/namespaces/"+ns, map[string]any{"metadata": map[string]any{
		"labels": map[string]string{key: value}}}); err != nil {
		c.t.Fatal(err)
	}
}
