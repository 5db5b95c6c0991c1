//go:build linux

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// TestOneImageTwoRoots: one image inode reached from two roots (a bind
// mount of one root's image over the other's), `run` started in both at
// the same moment, again and again: never both mounted at once, and the
// filesystem never damaged; the loser says it is in use (75).
func TestOneImageTwoRoots(t *testing.T) {
	requireSuite(t)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	t.Cleanup(func() { cleanupRoot(t, a); cleanupRoot(t, b) })
	for _, root := range []string{a, b} {
		mustRun(t, root, "create", "k", "--kind", "loop", "--size", "256MiB")
	}
	// b's record describes a's image (its filesystem's UUID among the rest):
	// the same image reached from two roots, as a copied root would be.
	rec, err := os.ReadFile(filepath.Join(a, "records", "k.json"))
	must(t, err)
	must(t, os.WriteFile(filepath.Join(b, "records", "k.json"), rec, 0o600))
	imageA, imageB := filepath.Join(a, "images", "k.img"), filepath.Join(b, "images", "k.img")
	must(t, unix.Mount(imageA, imageB, "", unix.MS_BIND, ""))
	t.Cleanup(func() { _ = unix.Unmount(imageB, 0) })
	script := func(other string) string {
		return fmt.Sprintf(`if grep -q " %s/mounts/k " /proc/self/mountinfo; then echo BOTH; fi; `+
			`echo x >> {mount}/log; sleep 0.2; if grep -q " %s/mounts/k " /proc/self/mountinfo; then echo BOTH; fi`, other, other)
	}
	for i := 0; i < 50; i++ {
		var ra, rb result
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); ra = dindstore(t, a, "run", "k", "--", "sh", "-c", script(b)) }()
		go func() { defer wg.Done(); rb = dindstore(t, b, "run", "k", "--", "sh", "-c", script(a)) }()
		wg.Wait()
		for _, r := range []result{ra, rb} {
			if strings.Contains(r.stdout, "BOTH") {
				t.Fatalf("round %d: the image was mounted from both roots at once", i)
			}
			if r.code != 0 && r.code != 75 {
				t.Fatalf("round %d: exit %d, want 0 or 75 (in use): %s", i, r.code, r.stderr)
			}
		}
		if ra.code == 75 && rb.code == 75 {
			t.Fatalf("round %d: both refused: %s / %s", i, ra.stderr, rb.stderr)
		}
	}
	for _, root := range []string{a, b} {
		if e := listJSON(t, root)["k"]; e.State != "idle" {
			t.Fatalf("after the races, %s's cache: %+v", root, e)
		}
	}
	must(t, unix.Unmount(imageB, 0))
	assertNothingLeft(t, a) // (the bind mount's own line names both roots)
	assertNothingLeft(t, b)
	if out := mustRun(t, a, "run", "k", "--", "sh", "-c", "wc -l < {mount}/log"); strings.TrimSpace(out) == "0" {
		t.Fatalf("no run wrote: %q", out)
	}
}

// TestImageChangedBehindBack: an image cut short, or deleted, behind
// dindstore's back is damage (74) naming what differs, never "undone" by
// recover nor mounted without a check.
func TestImageChangedBehindBack(t *testing.T) {
	requireSuite(t)
	root := filepath.Join(t.TempDir(), "root")
	t.Cleanup(func() { cleanupRoot(t, root) })
	for _, key := range []string{"cut", "gone", "swapped", "stranger"} {
		mustRun(t, root, "run", key, "--kind", "loop", "--size", "256MiB", "--", "sh", "-c", "echo mine > {mount}/f")
	}
	must(t, os.Truncate(filepath.Join(root, "images", "cut.img"), 128<<20))
	must(t, os.Remove(filepath.Join(root, "images", "gone.img")))
	// Another filesystem of the same size in its place.
	must(t, os.Rename(filepath.Join(root, "images", "stranger.img"), filepath.Join(root, "images", "swapped.img")))
	for _, c := range []struct{ key, says string }{{"cut", "cut short"}, {"gone", "image missing"},
		{"swapped", "another filesystem"}} {
		for _, step := range []string{"first", "after recover"} {
			r := dindstore(t, root, "run", c.key, "--", "cat", "{mount}/f")
			if r.code != 74 || !strings.Contains(r.stderr, c.says) {
				t.Fatalf("%s, %s: exit %d, want 74 saying %q: %s", c.key, step, r.code, c.says, r.stderr)
			}
			dindstore(t, root, "recover")
		}
		if e := listJSON(t, root)[c.key]; e.State != "damaged" {
			t.Errorf("%s is listed %+v, want damaged", c.key, e)
		}
	}
	if fi, err := os.Stat(filepath.Join(root, "images", "cut.img")); err != nil || fi.Size() != 128<<20 {
		t.Fatalf("recover changed the cut image (%v): it must never be undone as a grow", err)
	}
	assertNothingLeft(t, root)
}
