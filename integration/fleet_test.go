//go:build linux

package integration

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dindstore/dindstore/cache"
	"github.com/dindstore/dindstore/internal/fault"
	"github.com/dindstore/dindstore/volumes"
)

// pullJSON is what `pull --json` says.
type pullJSON struct {
	Fetched, Local, Resumed int
	FetchedBytes            int64
	Unchanged               bool
	Record                  struct {
		Generation int    `json:"generation"`
		Pulled     string `json:"pulled"`
	}
}

// registryCmd runs push or pull against reg with env, flags first.
func registryCmd(t *testing.T, bin string, reg *testRegistry, env []string, root, cmd string, args ...string) result {
	t.Helper()
	all := append(append([]string{cmd}, reg.flags()...), "--json")
	return runBinary(t, bin, env, root, append(all, args...)...)
}

// decodePull reads a pull's --json answer.
func decodePull(t *testing.T, r result) pullJSON {
	t.Helper()
	var p pullJSON
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &p) != nil {
		t.Fatalf("pull: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	return p
}

// sameFile fails unless a and b hold the same bytes.
func sameFile(t *testing.T, a, b string) {
	t.Helper()
	if out, err := exec.Command("cmp", a, b).CombinedOutput(); err != nil {
		t.Fatalf("%s and %s differ: %s %v", a, b, out, err)
	}
}

// TestFleetRegistry: a cache warmed by a real inner dockerd goes from one
// node (root) to another through a registry over TLS with a CA made here
// and basic auth: pushed, pulled byte for byte, and a dockerd on a --from
// clone of it runs the warm image. After a job adds 50 MiB and commits,
// the next push grows the registry by at most 1.3x the change (+16 MiB),
// and the pull of that generation onto the node holding the previous one
// downloads at most as much, making its next generation. Wrong
// credentials (77) and an unknown tag (66) are told apart.
func TestFleetRegistry(t *testing.T) {
	requireSuite(t)
	reg := newTestRegistry(t, registryOptions{tls: true, auth: true})
	good, bad := reg.dockerConfig(t, reg.user, reg.pass), reg.dockerConfig(t, reg.user, "wrong")
	o := startOuter(t, false)
	if _, err := dockerStdin(o.sock, busyboxTar(t), "import", "-", "warmme:1"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	t.Cleanup(func() { cleanupRoot(t, a); cleanupRoot(t, b) })
	if r := runBinary(t, binary, o.env(), a, "warm", "w", "--kind", "loop", "--size", "1GiB", "--from-host", "warmme:1"); r.code != 0 {
		t.Fatalf("warm: exit %d: %s", r.code, r.stderr)
	}
	ref := reg.addr + "/fleet/w"
	if r := registryCmd(t, binary, reg, bad, a, "push", "w", ref+":g0"); r.code != 77 {
		t.Fatalf("push with wrong credentials: exit %d, want 77: %s", r.code, r.stderr)
	}
	if r := registryCmd(t, binary, reg, good, a, "push", "w", ref+":g0"); r.code != 0 {
		t.Fatalf("push: exit %d: %s", r.code, r.stderr)
	}
	if r := registryCmd(t, binary, reg, bad, b, "pull", ref+":g0", "w"); r.code != 77 {
		t.Fatalf("pull with wrong credentials: exit %d, want 77: %s", r.code, r.stderr)
	}
	if r := registryCmd(t, binary, reg, good, b, "pull", ref+":nope", "w"); r.code != 66 {
		t.Fatalf("pull of an unknown tag: exit %d, want 66: %s", r.code, r.stderr)
	}
	p := decodePull(t, registryCmd(t, binary, reg, good, b, "pull", ref+":g0", "w"))
	t.Logf("pulled generation 0: %+v", p)
	sameFile(t, filepath.Join(a, "images", "w.img"), filepath.Join(b, "images", "w.img"))
	if out := mustRun(t, b, "run", "j", "--from", "w", "--", "sh", "testdata/fleet-job.sh", "{mount}"); !strings.Contains(out, "ran-warm-image") {
		t.Fatalf("a job on a clone of the pulled cache: %q", out)
	}

	mustRun(t, a, "run", "j", "--from", "w", "--commit-on", "success", "--", "sh", "testdata/fleet-job.sh", "{mount}", "50")
	before := reg.storageBytes(t)
	if r := registryCmd(t, binary, reg, good, a, "push", "w", ref+":g1"); r.code != 0 {
		t.Fatalf("push of the next generation: exit %d: %s", r.code, r.stderr)
	}
	const change, limit = 50 << 20, 50<<20*13/10 + 16<<20
	grown := reg.storageBytes(t) - before
	t.Logf("a 50 MiB change grew the registry by %.1f MiB (limit %.1f)", float64(grown)/(1<<20), float64(limit)/(1<<20))
	if grown > limit || grown < change/2 {
		t.Errorf("the registry grew by %d bytes for a 50 MiB change, want at most %d", grown, limit)
	}
	p = decodePull(t, registryCmd(t, binary, reg, good, b, "pull", ref+":g1", "w"))
	t.Logf("pulled generation 1 onto the node holding 0: %+v", p)
	if p.FetchedBytes > limit || p.Local == 0 || p.Record.Generation != 1 {
		t.Errorf("the pull of the next generation: %+v, want at most %d bytes fetched, the rest from disk", p, limit)
	}
	sameFile(t, filepath.Join(a, "images", "w.img"), filepath.Join(b, "images", "w.img"))
	if e := listJSON(t, b)["w"]; e.State != "idle" || e.Generation != 1 {
		t.Errorf("the pulled key after its second generation: %+v, want idle, generation 1", e)
	}
	if p := decodePull(t, registryCmd(t, binary, reg, good, b, "pull", ref+":g1", "w")); !p.Unchanged {
		t.Errorf("pulling the same generation again: %+v, want unchanged", p)
	}
	assertNothingLeft(t, a)
	assertNothingLeft(t, b)
}

// TestFleetPullFailures: a pull killed at each of its points, into a new
// key and into an existing one, leaves no half cache (the new key absent,
// the existing one at its generation, or switched whole) and resumes; a
// blob damaged in the registry's storage is refused naming its digest
// (74), making and switching nothing; a registry that stops in the middle
// of a pull is 69, and the pull resumes from another address.
func TestFleetPullFailures(t *testing.T) {
	requireSuite(t)
	reg := newTestRegistry(t, registryOptions{})
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	t.Cleanup(func() { cleanupRoot(t, a); cleanupRoot(t, b) })
	mustRun(t, a, "run", "src", "--kind", "loop", "--size", "512MiB", "--", "sh", "-c",
		"dd if=/dev/urandom of={mount}/g0 bs=1M count=40 2>/dev/null")
	ref := reg.addr + "/fleet/src"
	push := func(tag string) {
		if r := registryCmd(t, binary, reg, nil, a, "push", "src", ref+":"+tag); r.code != 0 {
			t.Fatalf("push: exit %d: %s", r.code, r.stderr)
		}
	}
	push("g0")
	g0 := hashFile(t, filepath.Join(a, "images", "src.img"))
	mustRun(t, a, "run", "src", "--", "sh", "-c", "dd if=/dev/urandom of={mount}/g1 bs=1M count=12 2>/dev/null")
	push("g1")
	pull := func(bin, tag, key string, env ...string) result {
		return registryCmd(t, bin, reg, env, b, "pull", ref+":"+tag, key)
	}
	for _, point := range fault.PullNames {
		fresh, existing := "new-"+point, "old-"+point
		decodePull(t, pull(binary, "g0", existing))
		for _, key := range []string{fresh, existing} {
			if key == fresh && point == "during-pull-switch" {
				continue // only a switch reaches it
			}
			if r := pull(faultBinary, "g1", key, fault.Env+"="+point); r.code != -1 {
				t.Fatalf("pull killed at %s: exit %d: %s", point, r.code, r.stderr)
			}
			e, ok := listJSON(t, b)[key]
			switch {
			case key == fresh && ok:
				t.Errorf("a pull killed at %s left the new key %s: %+v", point, key, e)
			case key == existing && point != "during-pull-switch" && (e.Generation != 0 || e.State != "idle"):
				t.Errorf("a pull killed at %s changed %s: %+v", point, key, e)
			}
			p := decodePull(t, pull(binary, "g1", key))
			if point != "during-pull-switch" && p.Resumed < 2 || point == "during-pull-switch" && !p.Unchanged {
				t.Errorf("the pull after one killed at %s: %+v, want it resumed (or finished)", point, p)
			}
			sameFile(t, filepath.Join(a, "images", "src.img"), filepath.Join(b, "images", key+".img"))
		}
	}

	// A damaged chunk: only in g1 (a node holding g0 would not fetch the others).
	decodePull(t, pull(binary, "g0", "held"))
	blob := newIn(reg.manifestLayers(t, "fleet/src", "g1"), reg.manifestLayers(t, "fleet/src", "g0"))
	flipByte(t, reg.blobPath(blob))
	for _, key := range []string{"damaged-new", "held"} {
		r := pull(binary, "g1", key)
		if r.code != 74 || !strings.Contains(r.stderr, blob) {
			t.Fatalf("pull of a damaged chunk into %s: exit %d, want 74 naming %s: %s", key, r.code, blob, r.stderr)
		}
	}
	if e, ok := listJSON(t, b)["damaged-new"]; ok {
		t.Errorf("a damaged pull made %+v", e)
	}
	if e := listJSON(t, b)["held"]; e.Generation != 0 || hashFile(t, filepath.Join(b, "images", "held.img")) != g0 {
		t.Errorf("a damaged pull switched the existing key: %+v", e)
	}
	flipByte(t, reg.blobPath(blob))

	// A host filesystem that cannot take the image's data: refused before
	// anything is written (76), nothing left.
	small := filepath.Join(hostFS(t, 64<<20, volumes.Ext4), "root")
	if r := runBinary(t, binary, nil, small, "pull", "--plain-http", ref+":g1", "big"); r.code != 76 ||
		!strings.Contains(r.stderr, "free") {
		t.Fatalf("pull onto a host without room: exit %d, want 76: %s", r.code, r.stderr)
	}
	if left, _ := filepath.Glob(filepath.Join(small, "*", "big*")); len(left) > 0 {
		t.Errorf("a pull refused for room left %v", left)
	}

	// The registry stops answering after the config and two chunks.
	front := failingFront(t, reg, 3)
	if r := runBinary(t, binary, nil, b, "pull", "--plain-http", "--parallel", "1", front+"/fleet/src:g1", "cut"); r.code != 69 {
		t.Fatalf("pull from a registry that stops: exit %d, want 69: %s", r.code, r.stderr)
	}
	if e, ok := listJSON(t, b)["cut"]; ok {
		t.Errorf("a cut pull made %+v", e)
	}
	if p := decodePull(t, pull(binary, "g1", "cut")); p.Resumed < 2 {
		t.Errorf("the pull after a registry stopped: %+v, want the two chunks it had resumed", p)
	}
	assertNothingLeft(t, a)
	assertNothingLeft(t, b)
}

// newIn is the first of these that is not in those.
func newIn(these, those []string) string {
	seen := map[string]bool{}
	for _, d := range those {
		seen[d] = true
	}
	for _, d := range these {
		if !seen[d] {
			return d
		}
	}
	return ""
}

// flipByte flips one bit in the middle of path.
func flipByte(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	b[len(b)/2] ^= 1
	must(t, os.WriteFile(path, b, 0o600))
}

// hashFile is the sha256 of path, as sha256sum prints it.
func hashFile(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("sha256sum", path).Output()
	must(t, err)
	return strings.Fields(string(out))[0]
}

// TestPullRefusesAChangedImage: an existing key's image that changes while
// a pull into it downloads (a job used the key meanwhile) makes the pull
// fail before anything is applied: what the pull left out as "the same"
// may differ now. The key keeps its generation and its image.
func TestPullRefusesAChangedImage(t *testing.T) {
	requireSuite(t)
	root := filepath.Join(t.TempDir(), "root")
	t.Cleanup(func() { cleanupRoot(t, root) })
	mustRun(t, root, "run", "k", "--kind", "loop", "--size", "256MiB", "--", "true")
	img := filepath.Join(root, "images", "k.img")
	before := hashFile(t, img)
	r, err := cache.OpenRoot(root, false)
	must(t, err)
	_, err = r.Pull(context.Background(), "k", func(dst, local *os.File) (cache.ImportInfo, error) {
		fi, err := local.Stat()
		if err != nil {
			return cache.ImportInfo{}, err
		}
		before = job(t, img) // the key used while the chunks download
		return cache.ImportInfo{FS: volumes.Ext4, Size: fi.Size(), Ranges: [][2]int64{{0, fi.Size()}}}, nil
	})
	if err == nil {
		t.Fatal("a pull applied over an image that changed while it downloaded")
	}
	t.Logf("the pull said: %v", err)
	if rec, err := r.Record("k"); err != nil || rec.Generation != 0 || hashFile(t, img) != before {
		t.Fatalf("the key after the refused pull: %+v %v", rec, err)
	}
}

// job writes to a cache's image as a job's daemon would, and returns its
// new hash.
func job(t *testing.T, img string) string {
	f, err := os.OpenFile(img, os.O_WRONLY, 0)
	must(t, err)
	_, err = f.WriteAt([]byte("job"), 100<<20)
	must(t, errors.Join(err, f.Close()))
	return hashFile(t, img)
}
