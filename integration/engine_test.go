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

// innerImagesScript starts dockerd (DOCKERD, with FLAGS) on {mount}, lists
// its images, and stops it.
const innerImagesScript = `set -e; W=$(mktemp -d /tmp/dindstore-eng.XXXXXX)
"$DOCKERD" --data-root "$1" --exec-root "$W/exec" --pidfile "$W/d.pid" -H "unix://$W/d.sock" --bridge=none --iptables=false --ip-masq=false $FLAGS >"$W/log" 2>&1 &
P=$!; trap 'kill -TERM $P; wait $P; rm -rf "$W"' EXIT
i=0; until docker -H "unix://$W/d.sock" version >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 300 ] || { tail "$W/log"; exit 90; }; sleep 0.1; done
docker -H "unix://$W/d.sock" info --format 'driver={{.Driver}}'
docker -H "unix://$W/d.sock" images --format 'image={{.Repository}}:{{.Tag}}'`

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
	fill := `set -e; W=$(mktemp -d /tmp/dindstore-eng.XXXXXX)
"$DOCKERD" --data-root "$1" --exec-root "$W/exec" --pidfile "$W/d.pid" -H "unix://$W/d.sock" --bridge=none --iptables=false --ip-masq=false >"$W/log" 2>&1 &
P=$!; trap 'kill -TERM $P; wait $P; rm -rf "$W"' EXIT
i=0; until docker -H "unix://$W/d.sock" version >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 300 ] || { tail "$W/log"; exit 90; }; sleep 0.1; done
docker -H "unix://$W/d.sock" import - "$2" >/dev/null`
	run := func(key, dockerd, flags string, stdin []byte, script string, extra ...string) result {
		env := append(engineEnv(), "DOCKERD="+dockerd, "FLAGS="+flags)
		args := append([]string{"run", key, "--kind", "loop", "--size", "2GiB"}, extra...)
		args = append(args, "--", "sh", "-c", script, "sh", "{mount}", "old:1")
		return runBinaryStdin(t, binary, env, stdin, root, args...)
	}
	if r := run("g", legacy, "", tar, fill); r.code != 0 {
		t.Fatalf("fill with dockerd 20.10: exit %d: %s", r.code, r.stderr)
	}
	if e := listJSON(t, root)["g"]; e.UsageSource == "" {
		t.Logf("cache g: %+v", e)
	}
	r := run("g", modern, "", nil, innerImagesScript)
	if r.code != 0 || !strings.Contains(r.stdout, "driver=overlay2") || !strings.Contains(r.stdout, "image=old:1") {
		t.Fatalf("current engine on the graph-driver cache: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	direct := runBinary(t, binary, engineEnv(), root, "run", "g", "--", modern, "--feature", "containerd-snapshotter=true")
	if direct.code != 1 || !strings.Contains(direct.stderr, "graphdriver") || !strings.Contains(direct.stderr, "snapshotter") {
		t.Fatalf("snapshotter asked for on a graph-driver cache: exit %d: %s", direct.code, direct.stderr)
	}
	// The other way round: filled by the current engine (containerd store).
	r = runBinaryStdin(t, binary, append(engineEnv(), "DOCKERD="+modern, "FLAGS="), tar, root,
		"run", "s", "--kind", "loop", "--size", "2GiB", "--", modern, "--version")
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
	env := append(engineEnv(), "DOCKERD="+filepath.Join(modernEngine, "dockerd"), "FLAGS=")
	r := runBinaryStdin(t, binary, env, nil, root, "run", "o", "--kind", "loop", "--size", "2GiB", "--",
		"sh", "-c", innerImagesScript, "sh", "{mount}")
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
