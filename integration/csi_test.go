//go:build linux

package integration

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestCSISanity runs csi-sanity (kubernetes-csi/csi-test v5) against
// `dindstore csi` on a unix socket, with real loop devices: the Identity
// and Node suites pass, the [Controller Server] tests are skipped (the
// plugin has none; a test-only front serves the Node tests that create a
// volume first: see sanityFront). Afterwards no mount and no loop
// device is left.
func TestCSISanity(t *testing.T) {
	requireSuite(t)
	sanity := csiSanityBinary(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	t.Cleanup(func() { cleanupCSI(t, dir, root) })
	sock, front := filepath.Join(dir, "csi.sock"), filepath.Join(dir, "front.sock")
	plugin := startCSIPlugin(t, root, sock, "--default-size", "256Mi", "--max-size", "1Gi")
	startSanityFront(t, plugin, front)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, sanity,
		"-csi.endpoint", "unix://"+front, "-csi.controllerendpoint", "unix://"+front,
		"-csi.mountdir", filepath.Join(dir, "mnt"), "-csi.stagingdir", filepath.Join(dir, "stage"),
		"-csi.testvolumesize", "268435456", "-ginkgo.skip", `\[Controller Server\]`, "-ginkgo.no-color", "-ginkgo.v")
	out, err := cmd.CombinedOutput()
	t.Logf("csi-sanity:\n%s", tail(string(out), 60))
	if err != nil {
		t.Fatalf("csi-sanity failed: %v", err)
	}
	plugin.stop()
	assertNoCSILeft(t, dir, root)
}
