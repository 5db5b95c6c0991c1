//go:build linux

package integration

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/dindstore/dindstore/cache"
	"github.com/dindstore/dindstore/loopdev"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// syncBuffer is a bytes.Buffer a process writes to while a test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// csiPlugin is a running `dindstore csi`.
type csiPlugin struct {
	*process
	t          testing.TB
	root, sock string
	args       []string
}

// startCSIPlugin starts `dindstore csi` on sock over root and waits until
// it answers Probe as ready. It is stopped (SIGTERM) at cleanup.
func startCSIPlugin(t testing.TB, root, sock string, args ...string) *csiPlugin {
	t.Helper()
	all := append([]string{binary, "--root", root, "csi", "--endpoint", "unix://" + sock, "--node-id", "it-node"}, args...)
	p := &csiPlugin{process: startProcess(t, "csi plugin", all...), t: t, root: root, sock: sock, args: args}
	p.waitReady()
	return p
}

// waitReady waits for the plugin's Probe to say ready.
func (p *csiPlugin) waitReady() {
	p.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		conn, err := grpc.NewClient("unix://"+p.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			resp, err := csipb.NewIdentityClient(conn).Probe(ctx, &csipb.ProbeRequest{})
			cancel()
			conn.Close()
			if err == nil && resp.GetReady().GetValue() {
				return
			}
		}
		select {
		case <-p.exited:
			p.t.Fatalf("the csi plugin exited: %v\n%s", p.cmd.ProcessState, p.log)
		case <-time.After(100 * time.Millisecond):
		}
	}
	p.t.Fatalf("the csi plugin was not ready within 60 s:\n%s", p.log)
}

// stop ends the plugin with SIGTERM (SIGKILL after 30 s).
func (p *csiPlugin) stop() { p.process.stop(30 * time.Second) }

// kill ends the plugin with SIGKILL, as a node's OOM killer or a crash would.
func (p *csiPlugin) kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// restart kills the plugin (SIGKILL: a crash, an OOM kill, a DaemonSet
// upgrade's abrupt end) and starts another one as it was started.
func (p *csiPlugin) restart() *csiPlugin {
	p.kill()
	return startCSIPlugin(p.t, p.root, p.sock, p.args...)
}

// publishVolume publishes v, failing the test when the plugin refuses it.
func publishVolume(t testing.TB, node csipb.NodeClient, v *csipb.NodePublishVolumeRequest) {
	t.Helper()
	if _, err := node.NodePublishVolume(context.Background(), v); err != nil {
		t.Fatalf("publish %s: %v", v.VolumeId, err)
	}
}

// unpublishVolume unpublishes v, failing the test when the plugin refuses.
func unpublishVolume(t testing.TB, node csipb.NodeClient, v *csipb.NodePublishVolumeRequest) {
	t.Helper()
	if _, err := node.NodeUnpublishVolume(context.Background(),
		&csipb.NodeUnpublishVolumeRequest{VolumeId: v.VolumeId, TargetPath: v.TargetPath}); err != nil {
		t.Fatalf("unpublish %s: %v", v.VolumeId, err)
	}
}

// stopLeavingNothing stops the plugin and checks that nothing below dir or
// its root is left mounted or attached.
func (p *csiPlugin) stopLeavingNothing(t *testing.T, dir string) {
	t.Helper()
	p.stop()
	assertNoCSILeft(t, dir, p.root)
}

// csiNode starts the plugin over a root in a temporary directory, cleaned
// up at the end even when the test fails; it returns the directory, the
// root and a client.
func csiNode(t *testing.T, args ...string) (dir, root string, plugin *csiPlugin, node csipb.NodeClient) {
	requireSuite(t)
	dir = t.TempDir()
	root = filepath.Join(dir, "root")
	t.Cleanup(func() { cleanupCSI(t, dir, root) })
	plugin = startCSIPlugin(t, root, filepath.Join(dir, "csi.sock"), args...)
	node, _ = plugin.client()
	return dir, root, plugin, node
}

// client connects to the plugin.
func (p *csiPlugin) client() (csipb.NodeClient, csipb.IdentityClient) {
	conn := p.conn()
	return csipb.NewNodeClient(conn), csipb.NewIdentityClient(conn)
}

// conn is a connection to the plugin, closed at cleanup.
func (p *csiPlugin) conn() *grpc.ClientConn {
	conn, err := grpc.NewClient("unix://"+p.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	must(p.t, err)
	p.t.Cleanup(func() { conn.Close() })
	return conn
}

// assertNoCSILeft checks that no mount below dir and no loop device backed
// by a file below root is left (per-volume caches have no image left to
// look up by).
func assertNoCSILeft(t testing.TB, dir, root string) {
	t.Helper()
	raw, err := os.ReadFile("/proc/self/mountinfo")
	must(t, err)
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			t.Errorf("mount left behind: %s", f[4])
		}
	}
	devs, err := loopdev.List()
	must(t, err)
	for _, d := range devs {
		if strings.HasPrefix(d.Tag, cache.TagPrefix+"csi.") || strings.HasPrefix(d.Tag, cache.TagPrefix+"k8s.") ||
			strings.HasPrefix(d.BackingFile, root+"/") {
			t.Errorf("loop device %s (%s, %s) left behind", d.Path, d.Tag, d.BackingFile)
		}
	}
}

// cleanupCSI is the safety net of a failed CSI test: unmount whatever is
// still mounted below dir (targets first, then caches) and detach the
// loop devices of root's images.
func cleanupCSI(t testing.TB, dir, root string) {
	cleanupMountsBelow(t, dir)
	cleanupRoot(t, root)
}

// csiSanityBinary is csi-sanity as `make csi-sanity` builds it.
func csiSanityBinary(t testing.TB) string {
	bin := os.Getenv("DINDSTORE_TEST_CSI_SANITY")
	if bin == "" {
		bin = filepath.Join("..", ".cache", "csi-sanity", "csi-sanity")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("skipping: csi-sanity not built (%v); `make csi-sanity` builds it (make test does)", err)
	}
	abs, err := filepath.Abs(bin)
	must(t, err)
	return abs
}

// tail keeps the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
