//go:build linux

package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/dindstore/dindstore/cache"
	"github.com/dindstore/dindstore/volumes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

// TestCSISanity runs csi-sanity (kubernetes-csi/csi-test v5) against
// `dindstore csi` on a unix socket, with real loop devices: the Identity,
// Controller (provisioned volumes, node-local) and Node suites pass.
// Afterwards no mount and no loop device is left.
func TestCSISanity(t *testing.T) {
	requireSuite(t)
	sanity := csiSanityBinary(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	t.Cleanup(func() { cleanupCSI(t, dir, root) })
	sock := filepath.Join(dir, "csi.sock")
	plugin := startCSIPlugin(t, root, sock, "--default-size", "256Mi", "--max-size", "1Gi")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, sanity,
		"-csi.endpoint", "unix://"+sock, "-csi.controllerendpoint", "unix://"+sock,
		"-csi.mountdir", filepath.Join(dir, "mnt"), "-csi.stagingdir", filepath.Join(dir, "stage"),
		"-csi.testvolumesize", "268435456", "-ginkgo.no-color", "-ginkgo.v")
	out, err := cmd.CombinedOutput()
	t.Logf("csi-sanity:\n%s", tail(string(out), 80))
	if err != nil {
		t.Fatalf("csi-sanity failed: %v", err)
	}
	if ls := listJSON(t, root); len(ls) != 0 {
		t.Errorf("csi-sanity's volumes are still there: %v", ls)
	}
	plugin.stopLeavingNothing(t, dir)
}

// csiVolume is a publication request as the kubelet makes one for an
// inline ephemeral volume.
func csiVolume(id, target, ns, pod string, attrs map[string]string) *csipb.NodePublishVolumeRequest {
	ctx := map[string]string{"csi.storage.k8s.io/ephemeral": "true", "csi.storage.k8s.io/pod.namespace": ns,
		"csi.storage.k8s.io/pod.name": pod, "csi.storage.k8s.io/pod.uid": "uid-" + pod}
	for k, v := range attrs {
		ctx[k] = v
	}
	return &csipb.NodePublishVolumeRequest{VolumeId: id, TargetPath: target, VolumeContext: ctx,
		VolumeCapability: &csipb.VolumeCapability{
			AccessType: &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{}},
			AccessMode: &csipb.VolumeCapability_AccessMode{Mode: csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER}}}
}

// wantCode checks a call's gRPC status code, and that its message holds
// each of want.
func wantCode(t *testing.T, err error, code codes.Code, want ...string) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("got %v, want %v", err, code)
	}
	for _, w := range want {
		if !strings.Contains(status.Convert(err).Message(), w) {
			t.Fatalf("%q does not say %q", status.Convert(err).Message(), w)
		}
	}
}

// TestCSICacheKeyExclusive: a namespace's cacheKey is one pod's at a time —
// a second pod asking for it is refused (FAILED_PRECONDITION) naming the
// holder pod; another namespace's same cacheKey is another cache; once the
// first pod's volume is unpublished the second pod gets the cache with
// what the first wrote. A volume of a pod's own is removed at unpublish, a
// cacheKey's kept. Nothing is left mounted.
func TestCSICacheKeyExclusive(t *testing.T) {
	dir, root, plugin, node := csiNode(t, "--default-size", "256Mi")
	ctx := context.Background()
	pods := filepath.Join(dir, "pods")
	must(t, os.MkdirAll(pods, 0o755))
	attrs := map[string]string{"cacheKey": "build"}
	first := csiVolume("vol-a", filepath.Join(pods, "a"), "ci", "runner-a", attrs)
	publishVolume(t, node, first)
	if _, err := node.NodePublishVolume(ctx, first); err != nil {
		t.Fatalf("publishing again at the same target: %v", err)
	}
	must(t, os.WriteFile(filepath.Join(first.TargetPath, "layer"), []byte("cached"), 0o644))
	second := csiVolume("vol-b", filepath.Join(pods, "b"), "ci", "runner-b", attrs)
	_, err := node.NodePublishVolume(ctx, second)
	wantCode(t, err, codes.FailedPrecondition, "ci/runner-a")
	other := csiVolume("vol-c", filepath.Join(pods, "c"), "other", "runner-c", attrs)
	if _, err := node.NodePublishVolume(ctx, other); err != nil {
		t.Fatalf("the same cacheKey in another namespace: %v", err)
	}
	for _, v := range []*csipb.NodePublishVolumeRequest{first, other} {
		if _, err := node.NodeUnpublishVolume(ctx, &csipb.NodeUnpublishVolumeRequest{VolumeId: v.VolumeId, TargetPath: v.TargetPath}); err != nil {
			t.Fatal(err)
		}
	}
	second.VolumeContext["size"] = "512Mi" // a larger size grows the cacheKey
	if _, err := node.NodePublishVolume(ctx, second); err != nil {
		t.Fatalf("after the holder's unpublish: %v", err)
	}
	if e := listJSON(t, root)["k8s.ci.build"]; e.ApparentBytes != 512<<20 {
		t.Fatalf("the cacheKey asked 512Mi is %d bytes", e.ApparentBytes)
	}
	if b, err := os.ReadFile(filepath.Join(second.TargetPath, "layer")); err != nil || string(b) != "cached" {
		t.Fatalf("the second pod does not see the first's data: %q %v", b, err)
	}
	if _, err := node.NodeUnpublishVolume(ctx, &csipb.NodeUnpublishVolumeRequest{VolumeId: "vol-b", TargetPath: second.TargetPath}); err != nil {
		t.Fatal(err)
	}
	ls := listJSON(t, root)
	if _, ok := ls["k8s.ci.build"]; !ok || len(ls) != 2 {
		t.Fatalf("want the two namespaces' caches kept, and nothing else: %v", ls)
	}
	plugin.stopLeavingNothing(t, dir)
}

// TestCSIRefusals: what a node cannot or will not do is said with the code
// the kubelet acts on, and leaves nothing behind: no room (admission),
// a bad attribute, a block volume, another target for a published volume.
func TestCSIRefusals(t *testing.T) {
	dir, root, plugin, node := csiNode(t, "--default-size", "256Mi",
		"--max-size", "2Ti", "--keep-free", "99.99%")
	ctx := context.Background()
	target := filepath.Join(dir, "target")
	_, err := node.NodePublishVolume(ctx, csiVolume("v1", target, "ci", "p", map[string]string{"size": "1Ti"}))
	wantCode(t, err, codes.ResourceExhausted, "not admitted")
	_, err = node.NodePublishVolume(ctx, csiVolume("v2", target, "ci", "p", map[string]string{"size": "3Ti"}))
	wantCode(t, err, codes.InvalidArgument, "maximum")
	_, err = node.NodePublishVolume(ctx, csiVolume("v3", target, "ci", "p", map[string]string{"cacheKey": "../../etc"}))
	wantCode(t, err, codes.InvalidArgument, "cacheKey")
	block := csiVolume("v4", target, "ci", "p", nil)
	block.VolumeCapability.AccessType = &csipb.VolumeCapability_Block{Block: &csipb.VolumeCapability_BlockVolume{}}
	_, err = node.NodePublishVolume(ctx, block)
	wantCode(t, err, codes.InvalidArgument, "block")
	if ls := listJSON(t, root); len(ls) != 0 {
		t.Fatalf("refused publications left caches: %v", ls)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Fatalf("a refused publication left its target: %v", err)
	}
	plugin.stopLeavingNothing(t, dir)
}

// TestCSIRestartTakesOver: a plugin killed (SIGKILL) under running pods
// loses nothing: its successor takes over the volumes still bound at their
// targets (publishing them again is a no-op, the data is there, the lease
// is the new plugin's), and cleans up the volume whose pod went while it
// was down (its target unmounted): its cache is removed. After the last
// unpublish nothing is left.
func TestCSIRestartTakesOver(t *testing.T) {
	dir, root, plugin, node := csiNode(t, "--default-size", "256Mi")
	ctx := context.Background()
	kept := csiVolume("vol-kept", filepath.Join(dir, "kept"), "ci", "runner-kept", nil)
	gone := csiVolume("vol-gone", filepath.Join(dir, "gone"), "ci", "runner-gone", nil)
	for _, v := range []*csipb.NodePublishVolumeRequest{kept, gone} {
		publishVolume(t, node, v)
	}
	must(t, os.WriteFile(filepath.Join(kept.TargetPath, "image-layer"), []byte("x"), 0o644))
	plugin.kill()
	must(t, volumes.UnmountBind(gone.TargetPath)) // the pod went while the plugin was down
	plugin = startCSIPlugin(t, root, plugin.sock, plugin.args...)
	node, _ = plugin.client()
	if _, err := node.NodePublishVolume(ctx, kept); err != nil {
		t.Fatalf("publishing a taken-over volume again: %v", err)
	}
	if _, err := os.Stat(filepath.Join(kept.TargetPath, "image-layer")); err != nil {
		t.Fatalf("the taken-over volume lost its data: %v", err)
	}
	ls := listJSON(t, root)
	if len(ls) != 1 {
		t.Fatalf("want only the kept volume's cache, the gone pod's removed: %v", ls)
	}
	for _, e := range ls {
		if e.State != "in-use" || e.HolderPID != plugin.cmd.Process.Pid {
			t.Fatalf("the kept volume's cache is %s, held by %d, not by the new plugin (%d)", e.State, e.HolderPID, plugin.cmd.Process.Pid)
		}
	}
	if _, err := node.NodeUnpublishVolume(ctx, &csipb.NodeUnpublishVolumeRequest{VolumeId: kept.VolumeId, TargetPath: kept.TargetPath}); err != nil {
		t.Fatal(err)
	}
	if ls := listJSON(t, root); len(ls) != 0 {
		t.Fatalf("after the last unpublish: %v", ls)
	}
	plugin.stopLeavingNothing(t, dir)
}

// TestCSIFromWarm: a volume with from= is a clone of a warm key, the pod's
// own: it starts with the warm key's data, and is removed at unpublish
// unless it asked to be committed (commit=true, allowed by the plugin's
// --allow-commit), which makes it the warm key's next generation.
func TestCSIFromWarm(t *testing.T) {
	dir, root, plugin, node := csiNode(t, "--default-size", "256Mi", "--allow-commit")
	r, err := cache.OpenRoot(root, true)
	must(t, err)
	ctx := context.Background()
	if _, _, err := r.Create(ctx, "base", cache.Spec{Kind: volumes.Loop, Size: 256 << 20}); err != nil {
		t.Fatal(err)
	}
	l, err := r.Acquire(ctx, "base", cache.ModeRun, []string{"test"}, cache.AcquireOptions{})
	must(t, err)
	must(t, os.WriteFile(filepath.Join(l.MountPath(), "warm-layer"), []byte("w"), 0o644))
	must(t, l.Release(ctx))
	publish := func(id string, attrs map[string]string) *csipb.NodePublishVolumeRequest {
		v := csiVolume(id, filepath.Join(dir, id), "ci", "runner-"+id, attrs)
		if _, err := node.NodePublishVolume(ctx, v); err != nil {
			t.Fatalf("publish %s: %v", id, err)
		}
		if _, err := os.Stat(filepath.Join(v.TargetPath, "warm-layer")); err != nil {
			t.Fatalf("volume %s is not a clone of the warm key: %v", id, err)
		}
		return v
	}
	v := publish("job1", map[string]string{"from": "base"})
	must(t, os.WriteFile(filepath.Join(v.TargetPath, "job1-layer"), []byte("1"), 0o644))
	unpublishVolume(t, node, v)
	v = publish("job2", map[string]string{"from": "base", "commit": "true"})
	if _, err := os.Stat(filepath.Join(v.TargetPath, "job1-layer")); err == nil {
		t.Fatal("an uncommitted clone's data reached the warm key")
	}
	must(t, os.WriteFile(filepath.Join(v.TargetPath, "job2-layer"), []byte("2"), 0o644))
	unpublishVolume(t, node, v)
	v = publish("job3", map[string]string{"from": "base"})
	if _, err := os.Stat(filepath.Join(v.TargetPath, "job2-layer")); err != nil {
		t.Fatalf("the committed clone is not the warm key's next generation: %v", err)
	}
	unpublishVolume(t, node, v)
	if ls := listJSON(t, root); len(ls) != 1 {
		t.Fatalf("want only the warm key left, the clones gone: %v", ls)
	}
	plugin.stopLeavingNothing(t, dir)
}

// TestCSIVolumeHealth: a volume whose filesystem counted errors (ext4's
// trigger_fs_error, as a failing disk would) is reported by
// NodeGetVolumeHealth as DATA_LOSS and by NodeGetVolumeStats as an abnormal
// condition (the field kubelets read); unpublishing it fails once (the
// release found the damage) and the kubelet's retry cleans it up.
func TestCSIVolumeHealth(t *testing.T) {
	dir, root, plugin, node := csiNode(t, "--default-size", "256Mi")
	ctx := context.Background()
	v := csiVolume("sick", filepath.Join(dir, "sick"), "ci", "runner", nil)
	publishVolume(t, node, v)
	health := func() *csipb.VolumeHealth {
		resp, err := node.NodeGetVolumeHealth(ctx, &csipb.NodeGetVolumeHealthRequest{VolumeId: v.VolumeId})
		must(t, err)
		return resp.GetVolumeHealth()
	}
	if h := health(); len(h.GetHealthStatuses()) != 0 {
		t.Fatalf("a fresh volume: %v", h)
	}
	dev := mountSource(t, v.TargetPath)
	must(t, os.WriteFile(filepath.Join("/sys/fs/ext4", filepath.Base(dev), "trigger_fs_error"), []byte("test"), 0o200))
	if h := health(); len(h.GetHealthStatuses()) != 1 || h.GetHealthStatuses()[0].GetStatus() != csipb.VolumeHealthErrorType_DATA_LOSS {
		t.Fatalf("a volume whose filesystem counted an error: %v", h)
	}
	stats, err := node.NodeGetVolumeStats(ctx, &csipb.NodeGetVolumeStatsRequest{VolumeId: v.VolumeId, VolumePath: v.TargetPath})
	must(t, err)
	if abnormal, msg := legacyCondition(t, stats); !abnormal || !strings.Contains(msg, "errors") {
		t.Fatalf("the stats' volume condition: abnormal=%v %q", abnormal, msg)
	}
	unpub := &csipb.NodeUnpublishVolumeRequest{VolumeId: v.VolumeId, TargetPath: v.TargetPath}
	if _, err := node.NodeUnpublishVolume(ctx, unpub); err == nil {
		t.Fatal("the release of a damaged volume did not say so")
	}
	if _, err := node.NodeUnpublishVolume(ctx, unpub); err != nil {
		t.Fatalf("the kubelet's retry: %v", err)
	}
	if ls := listJSON(t, root); len(ls) != 0 {
		t.Fatalf("the damaged volume's own cache is left: %v", ls)
	}
	plugin.stopLeavingNothing(t, dir)
}

// mountSource is the device mounted at path.
func mountSource(t *testing.T, path string) string {
	raw, err := os.ReadFile("/proc/self/mountinfo")
	must(t, err)
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) > 9 && f[4] == path {
			for i := 6; i < len(f)-2; i++ {
				if f[i] == "-" {
					return f[i+2]
				}
			}
		}
	}
	t.Fatalf("nothing mounted at %s", path)
	return ""
}

// legacyCondition reads the volume_condition field (2) that CSI 1.13 no
// longer declares, as a kubelet built on an earlier spec does.
func legacyCondition(t *testing.T, resp *csipb.NodeGetVolumeStatsResponse) (abnormal bool, message string) {
	raw := resp.ProtoReflect().GetUnknown()
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeTag(raw)
		raw = raw[n:]
		if num != 2 || typ != protowire.BytesType {
			raw = raw[protowire.ConsumeFieldValue(num, typ, raw):]
			continue
		}
		cond, n := protowire.ConsumeBytes(raw)
		raw = raw[n:]
		for len(cond) > 0 {
			num, typ, n := protowire.ConsumeTag(cond)
			cond = cond[n:]
			switch {
			case num == 1 && typ == protowire.VarintType:
				v, n := protowire.ConsumeVarint(cond)
				abnormal, cond = v == 1, cond[n:]
			case num == 2 && typ == protowire.BytesType:
				s, n := protowire.ConsumeString(cond)
				message, cond = s, cond[n:]
			default:
				cond = cond[protowire.ConsumeFieldValue(num, typ, cond):]
			}
		}
	}
	return abnormal, message
}

// TestCSIConcurrentPublishes: the kubelet publishes many volumes at once —
// eight of their own pods' and four pods racing for one cacheKey: all eight
// are bound, exactly one of the four gets the cacheKey (the others are
// told who holds it), and unpublishing them all at once leaves nothing.
func TestCSIConcurrentPublishes(t *testing.T) {
	dir, root, plugin, node := csiNode(t, "--default-size", "256Mi")
	ctx := context.Background()
	var vols []*csipb.NodePublishVolumeRequest
	for i := 0; i < 8; i++ {
		vols = append(vols, csiVolume(fmt.Sprintf("own-%d", i), filepath.Join(dir, fmt.Sprintf("own-%d", i)), "ci", fmt.Sprintf("p%d", i), nil))
	}
	for i := 0; i < 4; i++ {
		vols = append(vols, csiVolume(fmt.Sprintf("race-%d", i), filepath.Join(dir, fmt.Sprintf("race-%d", i)), "ci",
			fmt.Sprintf("r%d", i), map[string]string{"cacheKey": "shared"}))
	}
	errs := make([]error, len(vols))
	var wg sync.WaitGroup
	for i, v := range vols {
		wg.Add(1)
		go func() { defer wg.Done(); _, errs[i] = node.NodePublishVolume(ctx, v) }()
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case i < 8 && err != nil:
			t.Errorf("own volume %d: %v", i, err)
		case i >= 8 && err == nil:
			won++
		case i >= 8 && status.Code(err) != codes.FailedPrecondition:
			t.Errorf("racing for the cacheKey: %v, want FAILED_PRECONDITION", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d pods got the cacheKey at once, want 1", won)
	}
	for i, v := range vols {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := node.NodeUnpublishVolume(ctx, &csipb.NodeUnpublishVolumeRequest{VolumeId: v.VolumeId, TargetPath: v.TargetPath}); err != nil {
				t.Errorf("unpublish %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if ls := listJSON(t, root); len(ls) != 1 || ls["k8s.ci.shared"].State != "idle" {
		t.Fatalf("want only the idle cacheKey left: %v", ls)
	}
	plugin.stopLeavingNothing(t, dir)
}

// TestCSIBusyInAnotherNamespace: a process in a mount namespace of its own
// keeps a private copy of a volume's mounts (as a container started while
// the volume was bound would) when the kubelet unpublishes it: the
// unpublish fails naming the process, nothing is lost or half-removed, and
// once the process is gone the kubelet's retry finishes it.
func TestCSIBusyInAnotherNamespace(t *testing.T) {
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("skipping: unshare not found; `make deps` installs util-linux")
	}
	dir, root, plugin, node := csiNode(t, "--default-size", "256Mi")
	ctx := context.Background()
	v := csiVolume("busy", filepath.Join(dir, "busy"), "ci", "runner", nil)
	publishVolume(t, node, v)
	holder := exec.Command("sh", privateNS, dir, "sleep", "600")
	must(t, holder.Start())
	t.Cleanup(func() { _ = holder.Process.Kill(); _ = holder.Wait() })
	time.Sleep(200 * time.Millisecond) // the namespace is made
	unpub := &csipb.NodeUnpublishVolumeRequest{VolumeId: v.VolumeId, TargetPath: v.TargetPath}
	_, err := node.NodeUnpublishVolume(ctx, unpub)
	if err == nil || !strings.Contains(err.Error(), "sleep") {
		t.Fatalf("unpublishing a volume another namespace holds: %v, want the holder named", err)
	}
	if _, err := node.NodeUnpublishVolume(ctx, unpub); err == nil {
		t.Fatal("the retry succeeded while the volume is still held")
	}
	if ls := listJSON(t, root); len(ls) != 1 {
		t.Fatalf("the held volume's cache was removed: %v", ls)
	}
	must(t, holder.Process.Kill())
	_ = holder.Wait()
	if _, err := node.NodeUnpublishVolume(ctx, unpub); err != nil {
		t.Fatalf("the retry once the holder is gone: %v", err)
	}
	if ls := listJSON(t, root); len(ls) != 0 {
		t.Fatalf("left: %v", ls)
	}
	plugin.stopLeavingNothing(t, dir)
}

// TestCSIDamagedCloneNotCommitted: a clone asked to be committed whose
// filesystem counted errors is not committed at unpublish: the warm key
// keeps its generation, the clone is dropped, and the kubelet's retry of
// the failed unpublish succeeds (it is never stuck on a commit that cannot
// happen).
func TestCSIDamagedCloneNotCommitted(t *testing.T) {
	dir, root, plugin, node := csiNode(t, "--default-size", "256Mi", "--allow-commit")
	ctx := context.Background()
	if r := dindstore(t, root, "create", "base", "--kind", "loop", "--size", "256MiB"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	v := csiVolume("job", filepath.Join(dir, "job"), "ci", "runner", map[string]string{"from": "base", "commit": "true"})
	publishVolume(t, node, v)
	dev := mountSource(t, v.TargetPath)
	must(t, os.WriteFile(filepath.Join("/sys/fs/ext4", filepath.Base(dev), "trigger_fs_error"), []byte("test"), 0o200))
	unpub := &csipb.NodeUnpublishVolumeRequest{VolumeId: v.VolumeId, TargetPath: v.TargetPath}
	if _, err := node.NodeUnpublishVolume(ctx, unpub); err == nil {
		t.Fatal("the release of a damaged clone did not say so")
	}
	if _, err := node.NodeUnpublishVolume(ctx, unpub); err != nil {
		t.Fatalf("the kubelet's retry: %v", err)
	}
	if ls := listJSON(t, root); len(ls) != 1 || ls["base"].State != "idle" || ls["base"].Generation != 0 {
		t.Fatalf("want the warm key alone, at generation 0 still: %v", ls)
	}
	plugin.stopLeavingNothing(t, dir)
}

// TestCSISmallHost: on a real small host filesystem (1 GiB) under the
// caches, admission counts what the volumes in use may still write: two
// 400 MiB volumes fit, a third is refused with RESOURCE_EXHAUSTED (the
// kubelet retries) and fits once one of the others is gone.
func TestCSISmallHost(t *testing.T) {
	requireSuite(t)
	root := filepath.Join(smallHostFS(t, 1<<30), "root")
	dir := t.TempDir()
	t.Cleanup(func() { cleanupCSI(t, dir, root) })
	plugin := startCSIPlugin(t, root, filepath.Join(dir, "csi.sock"), "--default-size", "400Mi")
	node, _ := plugin.client()
	ctx := context.Background()
	var vols []*csipb.NodePublishVolumeRequest
	for i := range 3 {
		vols = append(vols, csiVolume(fmt.Sprintf("v%d", i), filepath.Join(dir, fmt.Sprintf("v%d", i)), "ci", fmt.Sprintf("p%d", i), nil))
	}
	for _, v := range vols[:2] {
		publishVolume(t, node, v)
	}
	_, err := node.NodePublishVolume(ctx, vols[2])
	wantCode(t, err, codes.ResourceExhausted, "not admitted")
	unpublishVolume(t, node, vols[0])
	if _, err := node.NodePublishVolume(ctx, vols[2]); err != nil {
		t.Fatalf("the kubelet's retry once a volume is gone: %v", err)
	}
	unpublishVolume(t, node, vols[1])
	unpublishVolume(t, node, vols[2])
	if ls := listJSON(t, root); len(ls) != 0 {
		t.Fatalf("left: %v", ls)
	}
	plugin.stopLeavingNothing(t, dir)
}

// TestCSIUnpublishUnadoptable: a publication its restarted plugin cannot
// take over (the cache's own mount was unmounted while the plugin was down,
// the bind at the target left) is still unpublished when the kubelet asks:
// the target is unbound and the volume's cache cleaned up behind it.
func TestCSIUnpublishUnadoptable(t *testing.T) {
	dir, root, plugin, node := csiNode(t, "--default-size", "256Mi")
	ctx := context.Background()
	v := csiVolume("lost", filepath.Join(dir, "lost"), "ci", "runner", nil)
	publishVolume(t, node, v)
	plugin.kill()
	mounts, _ := filepath.Glob(filepath.Join(root, "mounts", "*"))
	if len(mounts) != 1 {
		t.Fatalf("want the volume's cache mounted once: %v", mounts)
	}
	if out, err := exec.Command("umount", mounts[0]).CombinedOutput(); err != nil { // the bind at the target stays
		t.Fatalf("umount %s: %v: %s", mounts[0], err, out)
	}
	plugin = startCSIPlugin(t, root, plugin.sock, plugin.args...)
	node, _ = plugin.client()
	if _, err := node.NodeUnpublishVolume(ctx, &csipb.NodeUnpublishVolumeRequest{VolumeId: v.VolumeId, TargetPath: v.TargetPath}); err != nil {
		t.Fatalf("unpublish: %v", err)
	}
	if ls := listJSON(t, root); len(ls) != 0 {
		t.Fatalf("left: %v", ls)
	}
	plugin.stopLeavingNothing(t, dir)
}
