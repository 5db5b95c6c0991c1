//go:build linux

package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dindstore/dindstore/internal/fault"
)

// faultOps says which command reaches each failure point, and whether the
// victim cache must exist before it runs (for commit: as a clone of "warm").
var faultOps = map[string]struct {
	args    []string
	prepare bool
}{
	"during-commit":  {[]string{"commit", "victim"}, true},
	"after-truncate": {[]string{"create", "victim", "--kind", "loop", "--size", "256MiB"}, false},
	"after-mkfs":     {[]string{"create", "victim", "--kind", "loop", "--size", "256MiB"}, false},
	"after-record":   {[]string{"create", "victim", "--kind", "loop", "--size", "256MiB"}, false},
	"after-attach":   {[]string{"run", "victim", "--", "true"}, true},
	"after-mount":    {[]string{"run", "victim", "--", "true"}, true},
	"while-tree-runs": {[]string{"run", "victim", "--", "sh", "-c",
		`sh "$DINDSTORE_TEST_PRIVATE_NS" "$DINDSTORE_MOUNT" sh -c 'while :; do echo x >> "$DINDSTORE_MOUNT/log"; sleep 0.05; done' & ` +
			`(sleep 613; true) & exec sleep 600`}, true},
	"during-grow": {[]string{"grow", "victim", "--size", "512MiB"}, true},
	"during-rm":   {[]string{"rm", "victim"}, true},
}

// TestFaultPoints kills dindstore (or makes it fail) at every failure point,
// runs recover, and checks: nothing mounted or attached, the victim cache
// absent or complete and usable, and a cache made before untouched.
func TestFaultPoints(t *testing.T) {
	requireSuite(t)
	if len(faultOps) != len(fault.Names) {
		t.Fatalf("faultOps covers %d points, fault.Names lists %d", len(faultOps), len(fault.Names))
	}
	for _, point := range fault.Names {
		for _, mode := range []string{"kill", "error"} {
			t.Run(point+"/"+mode, func(t *testing.T) { faultPoint(t, point, mode) })
		}
	}
}

func faultPoint(t *testing.T, point, mode string) {
	op := faultOps[point]
	root := filepath.Join(t.TempDir(), "root")
	t.Cleanup(func() { cleanupRoot(t, root) })
	mustRun(t, root, "run", "other", "--kind", "loop", "--size", "256MiB", "--", "sh", "-c", "echo precious > {mount}/f")
	if op.prepare && point == "during-commit" {
		mustRun(t, root, "run", "warm", "--kind", "loop", "--size", "256MiB", "--", "sh", "-c", "echo gen0 > {mount}/g")
		mustRun(t, root, "run", "victim", "--from", "warm", "--keep-cache", "--", "sh", "-c", "echo mine > {mount}/f")
		t.Cleanup(func() { checkWarmAfterCommit(t, root) })
	} else if op.prepare {
		mustRun(t, root, "run", "victim", "--kind", "loop", "--size", "256MiB", "--", "sh", "-c", "echo mine > {mount}/f")
	}
	r := runBinary(t, faultBinary, []string{fault.Env + "=" + point + ":" + mode}, root, op.args...)
	switch {
	case mode == "kill" && r.code != -1:
		t.Fatalf("%v at %s: exit %d, want killed: %s", op.args, point, r.code, r.stderr)
	case mode == "error" && (r.code != 1 || !strings.Contains(r.stderr, "injected failure")):
		t.Fatalf("%v at %s: exit %d, want 1 with the injected error: %s", op.args, point, r.code, r.stderr)
	}
	waitGuards(t, root) // a killed run's guard repairs at once; recover comes after it
	rec := dindstore(t, root, "recover", "--json")
	if rec.code != 0 {
		t.Fatalf("recover: exit %d: %s%s", rec.code, rec.stdout, rec.stderr)
	}
	t.Logf("recover found: %s", compactJSON(rec.stdout))
	// A failure returned as an error must clean up after itself; only rm
	// (its record is gone already) and commit (journaled: recover rolls it
	// forward) leave work for recover.
	if mode == "error" && point != "during-rm" && point != "during-commit" && compactJSON(rec.stdout) != "[]" {
		t.Errorf("an error at %s left something for recover: %s", point, rec.stdout)
	}
	if w := append(writersOf(t, "DINDSTORE_MOUNT/log"), writersOf(t, "sleep 613")...); len(w) > 0 {
		killPids(w)
		t.Errorf("processes %v of the command's tree survived", w)
	}
	assertNothingLeft(t, root)
	checkVictim(t, root, op.prepare)
	if out := mustRun(t, root, "run", "other", "--", "cat", "{mount}/f"); strings.TrimSpace(out) != "precious" {
		t.Fatalf("the other cache changed: %q", out)
	}
	assertNothingLeft(t, root)
}

// checkVictim: the victim is either gone without a trace or complete and
// usable (and then holds its data when it had any).
func checkVictim(t *testing.T, root string, hadData bool) {
	t.Helper()
	var entries []map[string]any
	if err := json.Unmarshal([]byte(dindstore(t, root, "ls", "--json").stdout), &entries); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e["key"] != "victim" {
			continue
		}
		if e["error"] != nil || e["apparent_bytes"] != e["cap_bytes"] {
			t.Fatalf("victim listed but not whole: %v", e)
		}
		out := mustRun(t, root, "run", "victim", "--", "sh", "-c", "cat {mount}/f 2>/dev/null; echo usable")
		if !strings.Contains(out, "usable") || (hadData && !strings.Contains(out, "mine")) {
			t.Fatalf("victim not usable or lost its data: %q", out)
		}
		return
	}
	for _, d := range []string{"images", "data", "mounts"} {
		if left, _ := filepath.Glob(filepath.Join(root, d, "victim*")); len(left) > 0 {
			t.Fatalf("victim is gone from the records but left %v", left)
		}
	}
}

func mustRun(t *testing.T, root string, args ...string) string {
	t.Helper()
	r := dindstore(t, root, args...)
	if r.code != 0 {
		t.Fatalf("dindstore %v: exit %d: %s", args, r.code, r.stderr)
	}
	return r.stdout
}

func compactJSON(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// checkWarmAfterCommit: after a commit cut short and recover, the warm cache
// is whole: the old generation or the new one, never neither.
func checkWarmAfterCommit(t *testing.T, root string) {
	out := mustRun(t, root, "run", "warm", "--", "sh", "-c", "cat {mount}/g; cat {mount}/f 2>/dev/null; true")
	if !strings.Contains(out, "gen0") {
		t.Errorf("the warm cache lost its data in a commit cut short: %q", out)
	}
}

// waitGuards waits until no guard of root runs any more.
func waitGuards(t *testing.T, root string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		found := false
		for _, p := range procs {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), root+"\x00guard\x00") {
				found = true
			}
		}
		if !found {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a guard still runs after 30s")
		}
	}
}
