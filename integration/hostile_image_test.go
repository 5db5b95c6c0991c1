//go:build linux

package integration

import (
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// decoyCommands are the commands that open, grow, attach, clone, trim,
// repair, report or remove a cache's image; each is pointed at an image
// replaced behind dindstore's back.
var decoyCommands = [][]string{
	{"run", "victim", "--", "sh", "-c", "echo pwned > {mount}/f"},
	{"grow", "victim", "--size", "512MiB"},
	{"trim", "victim"},
	{"clone", "victim", "copy"},
	{"repair", "victim"},
	{"inspect", "victim"},
	{"ls"},
	{"df"},
	{"recover"},
	{"gc"},
	{"prune", "--max-count", "0", "--dry-run"},
	{"rm", "victim"},
}

// TestHostileImageDecoy: a key's image replaced by a symlink to a file
// outside the root, a hard link shared with a file outside the root, or a
// FIFO: every command refuses or reports it, none hangs, none mounts it,
// and the file outside stays byte-identical (a grow through a link
// truncated its target).
func TestHostileImageDecoy(t *testing.T) {
	requireSuite(t)
	swaps := map[string]func(t *testing.T, image, decoy string){
		"symlink":   func(t *testing.T, image, decoy string) { must(t, os.Remove(image)); must(t, os.Symlink(decoy, image)) },
		"hard link": func(t *testing.T, image, decoy string) { must(t, os.Remove(image)); must(t, os.Link(decoy, image)) },
		"fifo":      func(t *testing.T, image, _ string) { must(t, os.Remove(image)); must(t, unix.Mkfifo(image, 0o600)) },
	}
	for name, swap := range swaps {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			root := filepath.Join(dir, "root")
			t.Cleanup(func() { cleanupRoot(t, root) })
			mustRun(t, root, "run", "victim", "--kind", "loop", "--size", "256MiB", "--", "sh", "-c", "echo mine > {mount}/f")
			image, decoy := filepath.Join(root, "images", "victim.img"), filepath.Join(dir, "decoy.img")
			copyFile(t, image, decoy) // a valid filesystem: following the link would mount and change it
			want := fileSum(t, decoy)
			swap(t, image, decoy)
			// A cache never used: ls reads its superblock (no figures of a release).
			mustRun(t, root, "create", "fresh", "--kind", "loop", "--size", "256MiB")
			fresh, decoy2 := filepath.Join(root, "images", "fresh.img"), filepath.Join(dir, "decoy2.img")
			copyFile(t, fresh, decoy2)
			want2 := fileSum(t, decoy2)
			swap(t, fresh, decoy2)
			for _, args := range decoyCommands {
				r := dindstore(t, root, args...)
				t.Logf("%v: exit %d: %s", args, r.code, lastLines(r.stderr, 2))
				if r.code == -1 {
					t.Errorf("%v hung or was killed", args)
				}
				if args[0] == "run" || args[0] == "grow" || args[0] == "trim" || args[0] == "clone" {
					if r.code == 0 {
						t.Errorf("%v accepted a %s image", args, name)
					} else if !strings.Contains(r.stderr, "victim") {
						t.Errorf("%v: the refusal names no path: %s", args, r.stderr)
					}
				}
				if got := fileSum(t, decoy2); got != want2 {
					t.Fatalf("%v changed the second file outside the root through a %s image", args, name)
				}
				if got := fileSum(t, decoy); got != want {
					t.Fatalf("%v changed the file outside the root through a %s image", args, name)
				}
				assertNothingLeft(t, root)
			}
			if _, err := os.Stat(decoy); err != nil {
				t.Fatalf("the file outside the root is gone: %v", err)
			}
		})
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	must(t, err)
	defer in.Close()
	out, err := os.Create(dst)
	must(t, err)
	_, err = io.Copy(out, in)
	must(t, err)
	must(t, out.Close())
}

// fileSum is the size and SHA-256 of the file at path.
func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	must(t, err)
	defer f.Close()
	h := sha256.New()
	_, err = io.Copy(h, f)
	must(t, err)
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

// TestRefusedRunLeavesNothing: a run (or warm) refused by admission before
// its command ran removes the cache it had just created; a cache that was
// there before is kept.
func TestRefusedRunLeavesNothing(t *testing.T) {
	requireSuite(t)
	root := filepath.Join(t.TempDir(), "root")
	t.Cleanup(func() { cleanupRoot(t, root) })
	mustRun(t, root, "create", "old", "--kind", "loop", "--size", "256MiB")
	for _, key := range []string{"new", "old"} {
		r := dindstore(t, root, "run", key, "--kind", "loop", "--size", "256MiB", "--keep-free", "99.99%", "--", "true")
		if r.code != 76 {
			t.Fatalf("run %s on a host kept 99.99%% free: exit %d, want 76: %s", key, r.code, r.stderr)
		}
	}
	l := listJSON(t, root)
	if _, ok := l["new"]; ok {
		t.Errorf("the refused run left the cache it created: %+v", l["new"])
	}
	if _, ok := l["old"]; !ok {
		t.Error("a refused run removed a cache it did not create")
	}
	for _, d := range []string{"images", "mounts", "locks"} {
		if left, _ := filepath.Glob(filepath.Join(root, d, "new*")); len(left) > 0 {
			t.Errorf("the refused run left %v", left)
		}
	}
	assertNothingLeft(t, root)
}
