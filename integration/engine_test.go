//go:build linux

package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/dindstore/dindstore/overlay"
)

func overlayFSType(path string) (string, error) { return overlay.FSType(path) }

func requireModernEngine(t *testing.T) {
	t.Helper()
	requireSuite(t)
	if modernEngine == "" {
		t.Skip("skipping: no current engine built; `make engine` builds it (make test does)")
	}
}

// engineEnv runs commands with the current engine's binaries first on PATH.
func engineEnv() []string {
	return []string{"PATH=" + modernEngine + ":" + os.Getenv("PATH")}
}

// innerDockerScript is the script that starts $DOCKERD on a cache, imports stdin
// when given a name, and prints the driver and the images.
const innerDockerScript = "testdata/inner-docker.sh"

// TestEngineStores: a cache filled by dockerd 20.10 (graph driver) is
// pinned to that store when the current engine opens it (it sees the
// images), and refused, naming both stores, when the command asks for the
// containerd store; a cache filled by the current engine (containerd store)
// is refused to dockerd 20.10, naming both, before the daemon starts.
func TestEngineStores(t *testing.T) {
	requireModernEngine(t)
	modern := filepath.Join(modernEngine, "dockerd")
	legacy, err := exec.LookPath("dockerd")
	if err != nil || inModernLane {
		t.Skip("skipping: this test runs in the lane of Debian's dockerd, with the current engine beside it")
	}
	root := filepath.Join(t.TempDir(), "root")
	t.Cleanup(func() { cleanupRoot(t, root) })
	tar := busyboxTar(t)
	run := func(key, dockerd string, stdin []byte, importAs ...string) result {
		env := append(engineEnv(), "DOCKERD="+dockerd)
		args := append([]string{"run", key, "--kind", "loop", "--size", "2GiB", "--", "sh", innerDockerScript, "{mount}"}, importAs...)
		return runBinaryStdin(t, binary, env, stdin, root, args...)
	}
	if r := run("g", legacy, tar, "old:1"); r.code != 0 {
		t.Fatalf("fill with dockerd 20.10: exit %d: %s", r.code, r.stderr)
	}
	if e := listJSON(t, root)["g"]; e.UsageSource == "" {
		t.Logf("cache g: %+v", e)
	}
	r := run("g", modern, nil)
	if r.code != 0 || !strings.Contains(r.stdout, "driver=overlay2") || !strings.Contains(r.stdout, "image=old:1") {
		t.Fatalf("current engine on the graph-driver cache: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	direct := runBinary(t, binary, engineEnv(), root, "run", "g", "--", modern, "--feature", "containerd-snapshotter=true")
	if direct.code != 1 || !strings.Contains(direct.stderr, "graphdriver") || !strings.Contains(direct.stderr, "snapshotter") {
		t.Fatalf("snapshotter asked for on a graph-driver cache: exit %d: %s", direct.code, direct.stderr)
	}
	// The other way round: filled by the current engine (containerd store).
	r = runBinary(t, binary, engineEnv(), root, "run", "s", "--kind", "loop", "--size", "2GiB", "--", modern, "--version")
	if r.code != 0 {
		t.Fatalf("pin the store of a fresh cache: exit %d: %s", r.code, r.stderr)
	}
	refused := runBinary(t, binary, nil, root, "run", "s", "--", legacy, "--data-root", "{mount}")
	if refused.code != 1 || !strings.Contains(refused.stderr, "snapshotter") || !strings.Contains(refused.stderr, "graphdriver") {
		t.Fatalf("dockerd 20.10 on a containerd-store cache: exit %d: %s", refused.code, refused.stderr)
	}
	assertNothingLeft(t, root)
}

// TestEngineLeavesNothingOutside: after a run of the current engine on a
// cache, no new file is under the host's /var/lib/containerd or
// /var/lib/docker: everything the inner daemon wrote is in the cache.
func TestEngineLeavesNothingOutside(t *testing.T) {
	requireModernEngine(t)
	root := filepath.Join(t.TempDir(), "root")
	t.Cleanup(func() { cleanupRoot(t, root) })
	before := listTrees("/var/lib/containerd", "/var/lib/docker")
	env := append(engineEnv(), "DOCKERD="+filepath.Join(modernEngine, "dockerd"))
	r := runBinary(t, binary, env, root, "run", "o", "--kind", "loop", "--size", "2GiB", "--", "sh", innerDockerScript, "{mount}")
	if r.code != 0 || !strings.Contains(r.stdout, "driver=overlayfs") {
		t.Fatalf("current engine: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	if e := listJSON(t, root)["o"]; e.UsageSource == "" {
		t.Logf("cache o: %+v", e)
	}
	after := listTrees("/var/lib/containerd", "/var/lib/docker")
	if strings.Join(before, "\n") != strings.Join(after, "\n") {
		t.Fatalf("files appeared outside the cache:\nbefore %d entries, after %d", len(before), len(after))
	}
	assertNothingLeft(t, root)
}

func listTrees(dirs ...string) []string {
	var out []string
	for _, d := range dirs {
		_ = filepath.Walk(d, func(p string, _ os.FileInfo, err error) error {
			if err == nil {
				out = append(out, p)
			}
			return nil
		})
	}
	sort.Strings(out)
	return out
}
