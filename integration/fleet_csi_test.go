//go:build linux

package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestCSIWarmSource: the plugin keeps a --warm-source key pulled from a
// registry: a volume from it (waiting while the first pull runs) is a clone
// of what another node pushed; a volume that commits is pushed back
// (--push-commits), so that the other node pulls the job's data; a
// generation the other node pushes reaches this one at the next refresh.
func TestCSIWarmSource(t *testing.T) {
	requireSuite(t)
	reg := newTestRegistry(t, registryOptions{})
	src := filepath.Join(t.TempDir(), "src")
	t.Cleanup(func() { cleanupRoot(t, src) })
	mustRun(t, src, "run", "base", "--kind", "loop", "--size", "256MiB", "--", "sh", "-c", "echo w > {mount}/warm-layer")
	ref := reg.addr + "/fleet/base:latest"
	mustRun(t, src, "push", "--plain-http", "base", ref)
	dir, root, plugin, node := csiNode(t, "--default-size", "256Mi", "--allow-commit", "--push-commits",
		"--warm-source", "base="+ref, "--plain-http", "--refresh-interval", "1s")
	publish := func(id string, attrs map[string]string, want string) {
		v := csiVolume(id, filepath.Join(dir, id), "ci", "runner-"+id, attrs)
		var err error
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if _, err = node.NodePublishVolume(context.Background(), v); status.Code(err) != codes.Unavailable {
				break
			}
			t.Logf("publish %s: %v", id, err)
		}
		must(t, err)
		if _, err := os.Stat(filepath.Join(v.TargetPath, want)); err != nil {
			t.Fatalf("volume %s from the warm source lacks %s: %v", id, want, err)
		}
		must(t, os.WriteFile(filepath.Join(v.TargetPath, id+"-layer"), []byte(id), 0o644))
		unpublishVolume(t, node, v)
	}
	publish("job1", map[string]string{"from": "base", "commit": "true"}, "warm-layer")
	waitFor(t, "the plugin to push the committed generation", func() bool {
		return strings.Contains(plugin.log.String(), "pushed the committed base")
	})
	out := mustRun(t, src, "pull", "--plain-http", ref, "base")
	if got := mustRun(t, src, "run", "base", "--", "cat", "{mount}/job1-layer"); got != "job1" {
		t.Fatalf("the other node pulled %q (%s), want the committed job's data", got, out)
	}
	mustRun(t, src, "run", "base", "--", "sh", "-c", "echo 2 > {mount}/gen2")
	mustRun(t, src, "push", "--plain-http", "base", ref)
	waitFor(t, "the plugin to pull the new generation", func() bool {
		return strings.Count(plugin.log.String(), "warm source base: generation") >= 2
	})
	publish("job2", map[string]string{"from": "base"}, "gen2")
	if ls := listJSON(t, root); len(ls) != 1 {
		t.Fatalf("want only the warm key left on the node: %v", ls)
	}
	plugin.stopLeavingNothing(t, dir)
}

// waitFor polls cond for up to a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestCSIKubeletWarmSource: under a real kubelet, the plugin hydrates its
// --warm-source key from a registry (another node warmed and pushed it),
// and a dind pod whose volume is `from` that key has the warm image in its
// inner daemon at once and runs it.
func TestCSIKubeletWarmSource(t *testing.T) {
	requireSuite(t)
	reg := newTestRegistry(t, registryOptions{})
	o := startOuter(t, false)
	if _, err := dockerStdin(o.sock, busyboxTar(t), "import", "-", "warmme:1"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	src, root := filepath.Join(dir, "src"), filepath.Join(dir, "cache-root")
	t.Cleanup(func() { cleanupRoot(t, src) })
	if r := runBinary(t, binary, o.env(), src, "warm", "base", "--kind", "loop", "--size", "1GiB", "--from-host", "warmme:1"); r.code != 0 {
		t.Fatalf("warm: exit %d: %s", r.code, r.stderr)
	}
	ref := reg.addr + "/fleet/base:latest"
	mustRun(t, src, "push", "--plain-http", "base", ref)
	t.Cleanup(func() { cleanupCSI(t, dir, root) })
	c, plugin := startPluginNode(t, dir, root, "--default-size", "1Gi", "--warm-source", "base="+ref, "--plain-http")
	sock := filepath.Join(dir, "pod-w")
	c.create("/api/v1/namespaces/default/pods", dindPod("dind-w", sock, map[string]string{"from": "base"}))
	waitDocker(c, sock)
	if out, err := podDocker(sock, "run", "--rm", "--network", "none", "warmme:1", "echo", "ran"); err != nil || out != "ran" {
		t.Fatalf("the warm image in the pod: %q %v", out, err)
	}
	if !strings.Contains(plugin.log.String(), "warm source base: generation") {
		t.Errorf("the plugin did not log its pull:\n%s", plugin.log.String())
	}
	c.deletePod("dind-w", "default")
	plugin.stop()
	assertNoCSILeft(t, c.kubeletDir(), root)
}
