//go:build linux

package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dindstore/dindstore/internal/fault"
)

// TestWarmKilledIsNeverWarm: a warm killed (SIGKILL) before, during and
// after it copies the images leaves a base that is marked incomplete and
// nothing else — no mount, no loop device, no daemon directory — and a
// --from job never uses it as warm (it starts cold: a miss), until a warm
// completes; then the job sees every image.
func TestWarmKilledIsNeverWarm(t *testing.T) {
	requireSuite(t)
	o := startOuter(t, false)
	images := []string{"img-a:1", "img-b:1", "img-c:1"}
	for _, ref := range images {
		if _, err := dockerStdin(o.sock, busyboxTar(t), "import", "-", ref); err != nil {
			t.Fatal(err)
		}
	}
	warmArgs := []string{"warm", "base", "--kind", "loop", "--size", "1GiB", "-q"}
	for _, ref := range images {
		warmArgs = append(warmArgs, "--from-host", ref)
	}
	for _, point := range fault.WarmNames {
		t.Run(point, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "root")
			t.Cleanup(func() { cleanupRoot(t, root) })
			before, _ := filepath.Glob(filepath.Join(os.TempDir(), "dindstore-warm-*"))
			r := runBinary(t, faultBinary, append(o.env(), fault.Env+"="+point+":kill"), root, warmArgs...)
			if r.code != -1 {
				t.Fatalf("warm with %s armed: exit %d, want killed: %s", point, r.code, r.stderr)
			}
			waitGuards(t, root)
			t.Cleanup(func() {
				if log, _ := os.ReadFile(filepath.Join(root, "logs", "base.log")); t.Failed() {
					t.Logf("the base's log:\n%s", lastLines(string(log), 15))
				}
			})
			assertNothingLeft(t, root)
			if after, _ := filepath.Glob(filepath.Join(os.TempDir(), "dindstore-warm-*")); len(after) > len(before) {
				t.Errorf("the killed warm left its daemon directory: %v (before: %v)", after, before)
			}
			if e := listJSON(t, root)["base"]; e.State != "incomplete" {
				t.Fatalf("the base after a warm killed at %s: %+v, want incomplete", point, e)
			}
			job := dindstore(t, root, "run", "job", "--from", "base", "--", "sh", "-c",
				`cat {mount}/image/*/repositories.json 2>/dev/null; echo done`)
			if job.code != 0 || strings.Contains(job.stdout, "img-") {
				t.Fatalf("a job --from the half-warmed base: exit %d, saw %q: %s", job.code, job.stdout, job.stderr)
			}
			if e := listJSON(t, root)["base"]; e.Hits != 0 || e.Misses != 1 || e.State != "incomplete" {
				t.Fatalf("the job was served the half-warmed base: %+v", e)
			}
			if w := runBinary(t, binary, o.env(), root, warmArgs...); w.code != 0 {
				t.Fatalf("warm again: exit %d: %s", w.code, w.stderr)
			}
			job = dindstore(t, root, "run", "job", "--from", "base", "--", "sh", "-c", `cat {mount}/image/*/repositories.json`)
			for _, ref := range images {
				if !strings.Contains(job.stdout, strings.TrimSuffix(ref, ":1")) {
					t.Fatalf("a job after the warm completed misses %s: exit %d, %q: %s", ref, job.code, job.stdout, job.stderr)
				}
			}
			if e := listJSON(t, root)["base"]; e.State != "idle" || e.Hits != 1 {
				t.Fatalf("the base after a whole warm and a job: %+v", e)
			}
			assertNothingLeft(t, root)
		})
	}
}
