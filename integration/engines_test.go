//go:build linux

package integration

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestLaunchImageStore: launch chooses the image store as run does. On a
// fresh cache the current engine gets its own default (the containerd
// store) and either store when asked (--image-store, or the daemon's
// --feature); a store the cache does not hold, or the image's engine
// lacks, is refused before any container exists, naming both, and the
// record is unchanged; --image-store against the daemon's own flag is a
// usage error.
func TestLaunchImageStore(t *testing.T) {
	requireSuite(t)
	o := startOuter(t, true)
	engines := dindEngines(t, o)
	if len(engines) < 2 {
		t.Skip("skipping: the current engine is not built (make engine)")
	}
	root := filepath.Join(t.TempDir(), "root")
	t.Cleanup(func() {
		for _, k := range []string{"dflt", "graph", "feat", "old"} {
			runBinary(t, binary, o.env(), root, "release", k)
		}
		cleanupRoot(t, root)
	})
	cases := []struct {
		key, image string
		extra      []string
		driver     string
		store      string
	}{
		{"dflt", currentDindImage, nil, "overlayfs", "snapshotter"},
		{"graph", currentDindImage, []string{"--image-store", "graphdriver"}, "overlay2", "graphdriver"},
		{"feat", currentDindImage, []string{"--", "--feature", "containerd-snapshotter=true", "--bridge=none", "--iptables=false"}, "overlayfs", "snapshotter"},
	}
	for _, c := range cases {
		args := append([]string{"launch", c.key, "--kind", "loop", "--size", "4GiB", "--image", c.image, "--detach"}, c.extra...)
		r := runBinary(t, binary, o.env(), root, args...)
		if r.code != 0 {
			t.Fatalf("launch %s: exit %d: %s", c.key, r.code, r.stderr)
		}
		id := strings.TrimSpace(r.stdout)
		if info := innerDocker(t, o, id, nil, "info", "--format", "{{.Driver}}"); strings.TrimSpace(info) != c.driver {
			t.Fatalf("launch %s %v: inner driver %q, want %s", c.key, c.extra, info, c.driver)
		}
		if r := dindstore(t, root, "release", c.key); r.code != 0 {
			t.Fatalf("release %s: exit %d: %s", c.key, r.code, r.stderr)
		}
		if got := listJSON(t, root)[c.key].ImageStore; got != c.store {
			t.Fatalf("%s: recorded store %q, want %q", c.key, got, c.store)
		}
	}
	refusals := []struct {
		key   string
		args  []string
		code  int
		names []string
	}{
		{"graph", []string{"--image", currentDindImage, "--image-store", "containerd"}, 1, []string{"graphdriver", "snapshotter"}},
		{"dflt", []string{"--image", currentDindImage, "--", "--feature", "containerd-snapshotter=false"}, 1, []string{"graphdriver", "snapshotter"}},
		{"old", []string{"--kind", "loop", "--size", "1GiB", "--image", dindImage, "--image-store", "containerd"}, 1, []string{"snapshotter", "graphdriver"}},
		{"graph", []string{"--image", currentDindImage, "--image-store", "graphdriver", "--", "--feature", "containerd-snapshotter=true"}, 2, []string{"graphdriver", "snapshotter"}},
		{"graph", []string{"--image", currentDindImage, "--image-store", "zfs"}, 2, []string{"zfs"}},
	}
	for _, c := range refusals {
		before := listJSON(t, root)[c.key]
		r := runBinary(t, binary, o.env(), root, append([]string{"launch", c.key, "--detach"}, c.args...)...)
		if r.code != c.code {
			t.Fatalf("launch %s %v: exit %d, want %d: %s", c.key, c.args, r.code, c.code, r.stderr)
		}
		for _, n := range c.names {
			if !strings.Contains(r.stderr, n) {
				t.Errorf("launch %s %v: the refusal does not name %s: %s", c.key, c.args, n, r.stderr)
			}
		}
		if out, _ := o.docker("ps", "-aq", "--filter", "label=io.dindstore.key="+c.key); strings.TrimSpace(out) != "" {
			t.Fatalf("launch %s %v: a container was made before the refusal", c.key, c.args)
		}
		if after := listJSON(t, root)[c.key]; after.ImageStore != before.ImageStore {
			t.Fatalf("launch %s %v: the refusal changed the record's store from %q to %q", c.key, c.args,
				before.ImageStore, after.ImageStore)
		}
	}
	assertNothingLeft(t, root)
}

// TestLaunchWarmCloneCommit, on each engine: a warm cache filled on the
// host (Debian's dockerd: the graph driver) cloned for a launched dind
// (--from), which sees the warm images, adds one, and is committed at its
// release (--commit); the next clone sees both. The current engine keeps
// to the warm cache's recorded store.
func TestLaunchWarmCloneCommit(t *testing.T) {
	forEachEngineRoot(t, func(t *testing.T, o *outer, root string, e dindEngine) {
		warmFromHost(t, o, root, "w", "warmimg:1")
		launch := func(key string) string {
			t.Helper()
			t.Cleanup(func() { runBinary(t, binary, o.env(), root, "release", key) })
			return launchDetachedImage(t, o, root, key, e.image, "--from", "w")
		}
		id := launch("job1")
		if out := innerDocker(t, o, id, nil, "images", "--format", "{{.Repository}}:{{.Tag}}"); !strings.Contains(out, "warmimg:1") {
			t.Fatalf("the launched clone lacks the warm image: %q", out)
		}
		innerDocker(t, o, id, busyboxTar(t), "import", "-", "jobimg:1")
		if r := runBinary(t, binary, o.env(), root, "release", "job1", "--commit"); r.code != 0 {
			t.Fatalf("release --commit: exit %d: %s", r.code, r.stderr)
		}
		id = launch("job2")
		out := innerDocker(t, o, id, nil, "images", "--format", "{{.Repository}}:{{.Tag}}")
		if !strings.Contains(out, "warmimg:1") || !strings.Contains(out, "jobimg:1") {
			t.Fatalf("the next clone after the commit: %q", out)
		}
		if r := runBinary(t, binary, o.env(), root, "release", "job2"); r.code != 0 {
			t.Fatalf("release: exit %d: %s", r.code, r.stderr)
		}
		if e := listJSON(t, root)["w"]; e.Generation != 1 || e.ImageStore != "graphdriver" {
			t.Fatalf("the warm cache after one commit: %+v", e)
		}
		assertNothingLeft(t, root)
	})
}
