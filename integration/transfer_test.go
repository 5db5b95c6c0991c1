//go:build linux

package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dindstore/dindstore/loopdev"
	"github.com/dindstore/dindstore/transfer"
	"github.com/dindstore/dindstore/volumes"
	"oras.land/oras-go/v2/registry/remote"
)

// TestTransferRegistry: a released cache's image pushed to a real
// registry (Debian's docker-registry on 127.0.0.1, plain HTTP) and pulled
// back is a filesystem that mounts with the cache's file in it; pushed
// again unchanged, no chunk is sent; the pulled image keeps its holes.
func TestTransferRegistry(t *testing.T) {
	requireSuite(t)
	reg := startRegistry(t)
	root := filepath.Join(t.TempDir(), "root")
	t.Cleanup(func() { cleanupRoot(t, root) })
	mustRun(t, root, "run", "src", "--kind", "loop", "--size", "1GiB", "--", "sh", "-c",
		"echo mine > {mount}/f; dd if=/dev/urandom of={mount}/blob bs=1M count=12 2>/dev/null")
	repo, err := remote.NewRepository(reg + "/caches/src")
	must(t, err)
	repo.PlainHTTP = true
	ctx := context.Background()
	img, err := os.Open(filepath.Join(root, "images", "src.img"))
	must(t, err)
	defer img.Close()
	res, err := transfer.Push(ctx, repo, img, transfer.Config{FS: "ext4", BlockSize: 4096}, "g0", transfer.Parallel)
	if err != nil || res.Sent == 0 {
		t.Fatalf("push: %+v %v", res, err)
	}
	t.Logf("pushed %d chunks, %d bytes, of a 1 GiB image", res.Sent, res.SentBytes)
	if again, err := transfer.Push(ctx, repo, img, transfer.Config{FS: "ext4", BlockSize: 4096}, "g0", transfer.Parallel); err != nil || again.Sent != 0 {
		t.Fatalf("push unchanged: %+v %v", again, err)
	}
	dir := t.TempDir()
	dst, err := os.Create(filepath.Join(dir, "pulled.img"))
	must(t, err)
	defer dst.Close()
	pres, err := transfer.Pull(ctx, repo, "g0", dst, transfer.PullOptions{})
	if err != nil || pres.Fetched != res.Sent {
		t.Fatalf("pull: %+v %v", pres, err)
	}
	var st, srcSt os.FileInfo
	st, _ = dst.Stat()
	srcSt, _ = img.Stat()
	if st.Size() != srcSt.Size() {
		t.Fatalf("pulled %d bytes of a %d-byte image", st.Size(), srcSt.Size())
	}
	mnt := filepath.Join(dir, "mnt")
	must(t, os.Mkdir(mnt, 0o700))
	if _, err := volumes.MountImage(ctx, dst.Name(), mnt, volumes.Ext4, loopdev.Tag("dindstore-test:", "pulled")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = volumes.Unmount(mnt) })
	if b, err := os.ReadFile(filepath.Join(mnt, "f")); err != nil || strings.TrimSpace(string(b)) != "mine" {
		t.Fatalf("the pulled cache's file: %q %v", b, err)
	}
	must(t, volumes.Unmount(mnt))
}

// TestPushPullCommands: `dindstore push` of an idle cache to a registry
// and `dindstore pull` into a new key on another root: the new cache runs
// with the first one's files and its store; pushed again, nothing is
// sent, and pulled again nothing is fetched; a cache in use is not pushed
// (75); a pull into a cache that is not a loop cache, or of a reference
// that is not there, leaves nothing.
func TestPushPullCommands(t *testing.T) {
	requireSuite(t)
	reg := startRegistry(t)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	t.Cleanup(func() { cleanupRoot(t, a); cleanupRoot(t, b) })
	mustRun(t, a, "run", "src", "--kind", "loop", "--size", "512MiB", "--", "sh", "-c", "echo mine > {mount}/f")
	ref := reg + "/caches/src:g0"
	out := mustRun(t, a, "push", "--plain-http", "src", ref)
	if !strings.Contains(out, "chunks sent") {
		t.Fatalf("push said: %q", out)
	}
	if again := mustRun(t, a, "push", "--plain-http", "src", ref); !strings.Contains(again, "0 chunks sent") {
		t.Fatalf("push of an unchanged cache: %q", again)
	}
	mustRun(t, b, "pull", "--plain-http", ref, "copy")
	if again := mustRun(t, b, "pull", "--plain-http", ref, "copy"); !strings.Contains(again, "already") {
		t.Fatalf("pull of what the key holds already: %q", again)
	}
	if got := mustRun(t, b, "run", "copy", "--", "cat", "{mount}/f"); strings.TrimSpace(got) != "mine" {
		t.Fatalf("the pulled cache: %q", got)
	}
	if e := listJSON(t, b)["copy"]; e.State != "idle" {
		t.Fatalf("the pulled cache: %+v", e)
	}
	// Used since, the cache is no longer the artifact: pulled again, what
	// the use changed (its superblock, at least) comes back.
	if again := mustRun(t, b, "pull", "--plain-http", ref, "copy"); !strings.Contains(again, "generation 1") {
		t.Fatalf("pull into a cache used since its pull: %q", again)
	}
	sameFile(t, filepath.Join(a, "images", "src.img"), filepath.Join(b, "images", "copy.img"))
	mustRun(t, b, "warm", "viawarm", "--plain-http", "--from-registry", ref)
	if got := mustRun(t, b, "run", "viawarm", "--", "cat", "{mount}/f"); strings.TrimSpace(got) != "mine" {
		t.Fatalf("the cache warm --from-registry made: %q", got)
	}
	if r := dindstore(t, b, "warm", "viawarm", "--from-registry", ref, "--pull", "x:1"); r.code != 2 {
		t.Fatalf("warm --from-registry with --pull: exit %d, want 2: %s", r.code, r.stderr)
	}
	mustRun(t, b, "create", "dir", "--kind", "dir")
	if r := dindstore(t, b, "pull", "--plain-http", ref, "dir"); r.code != 2 {
		t.Fatalf("pull into a dir cache: exit %d, want 2: %s", r.code, r.stderr)
	}
	if r := dindstore(t, b, "pull", "--plain-http", reg+"/caches/none:g0", "gone"); r.code != 66 {
		t.Fatalf("pull of a reference that is not there: exit %d, want 66: %s", r.code, r.stderr)
	}
	if r := dindstore(t, b, "pull", "--plain-http", "127.0.0.1:1/caches/src:g0", "gone"); r.code != 69 {
		t.Fatalf("pull from a registry that is not there: exit %d, want 69: %s", r.code, r.stderr)
	}
	if _, ok := listJSON(t, b)["gone"]; ok {
		t.Fatal("a failed pull left a cache")
	}
	if left, _ := filepath.Glob(filepath.Join(b, "images", "gone*")); len(left) > 0 {
		t.Fatalf("a failed pull left %v", left)
	}
	_, stop := holdInBackground(t, a, "src", "true")
	if r := dindstore(t, a, "push", "--plain-http", "src", ref); r.code != 75 {
		t.Fatalf("push of a cache in use: exit %d: %s", r.code, r.stderr)
	}
	stop()
	assertNothingLeft(t, a)
	assertNothingLeft(t, b)
}
