//go:build linux

package integration

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The GitHub Actions runner is not packaged here: these tests play its
// documented protocol against the shipped hooks — each hook run as `bash -e
// FILE` with the runner's environment (GITHUB_REPOSITORY, RUNNER_NAME,
// GITHUB_ENV), then the job's steps with the variables the hooks wrote to
// $GITHUB_ENV — and ARC's drop-in directories by running every file of
// job-started.d/ and job-completed.d/ the same way.

// ghaRunner is one runner slot's environment for the hooks.
type ghaRunner struct {
	t       *testing.T
	env     []string
	hooks   string // directory of the shipped hooks
	o       *outer
	githubE string
}

func newGHARunner(t *testing.T, o *outer, root string) *ghaRunner {
	dir := t.TempDir()
	hooks, err := filepath.Abs("../contrib/github-actions")
	must(t, err)
	r := &ghaRunner{t: t, hooks: hooks, o: o, githubE: filepath.Join(dir, "github_env")}
	r.env = append(append(os.Environ(), o.env()...), "GITHUB_REPOSITORY=Acme/Widgets_App", "RUNNER_NAME=runner 1",
		"GITHUB_ENV="+r.githubE, "DINDSTORE="+binary+" --root "+root, "DINDSTORE_DIND_IMAGE="+dindImage,
		"DINDSTORE_SIZE=4GiB", "DINDSTORE_STATE_DIR="+filepath.Join(dir, "state"),
		"DINDSTORE_DOCKERD_ARGS=--bridge=none --iptables=false --ip-masq=false")
	return r
}

// hook runs one hook file as the runner does: bash -e FILE.
func (r *ghaRunner) hook(file string) (string, error) {
	cmd := exec.Command("bash", "-e", file)
	cmd.Env = r.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// dropIns runs every file of dir, in name order, as ARC's hooks do.
func (r *ghaRunner) dropIns(dir string) {
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, f := range files {
		if out, err := r.hook(f); err != nil {
			r.t.Fatalf("%s: %v\n%s", f, err, out)
		}
	}
}

// step runs a job step: sh -c SCRIPT with what the hooks wrote to GITHUB_ENV.
func (r *ghaRunner) step(script string, stdin []byte) string {
	b, err := os.ReadFile(r.githubE)
	must(r.t, err)
	cmd := exec.Command("sh", "-c", script)
	cmd.Env = append(os.Environ(), strings.Fields(string(b))...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("step %q: %v\n%s", script, err, out)
	}
	return string(out)
}

// TestGitHubActionsHooks: two jobs on one runner slot, the first with the
// hooks installed as the runner's hook variables, the second through ARC's
// drop-in directories. Each job's steps reach the inner daemon through
// DOCKER_HOST; the second sees the first's image; nothing is left after.
func TestGitHubActionsHooks(t *testing.T) {
	requireSuite(t)
	o := startOuter(t, true)
	buildDindImage(t, o)
	root := filepath.Join(t.TempDir(), "root")
	t.Cleanup(func() { cleanupRoot(t, root) })
	r := newGHARunner(t, o, root)

	if out, err := r.hook(filepath.Join(r.hooks, "job-started.sh")); err != nil {
		t.Fatalf("job-started.sh: %v\n%s", err, out)
	}
	r.step(`docker import --change 'CMD ["/bin/sh"]' - bb:gha`, busyboxTar(t))
	if out := r.step("docker run --rm --network none bb:gha echo hello from the job", nil); !strings.Contains(out, "hello from the job") {
		t.Fatalf("the job's container: %q", out)
	}
	if out, err := r.hook(filepath.Join(r.hooks, "job-completed.sh")); err != nil {
		t.Fatalf("job-completed.sh: %v\n%s", err, out)
	}
	assertNothingLeft(t, root)

	arc := t.TempDir()
	for _, h := range []string{"job-started", "job-completed"} {
		must(t, os.Mkdir(filepath.Join(arc, h+".d"), 0o755))
		b, err := os.ReadFile(filepath.Join(r.hooks, h+".sh"))
		must(t, err)
		must(t, os.WriteFile(filepath.Join(arc, h+".d", "50-dindstore.sh"), b, 0o755))
	}
	must(t, os.Truncate(r.githubE, 0))
	r.dropIns(filepath.Join(arc, "job-started.d"))
	if out := r.step("docker images --format '{{.Repository}}:{{.Tag}}'", nil); !strings.Contains(out, "bb:gha") {
		t.Fatalf("the next job on the slot does not see the first job's image: %q", out)
	}
	r.dropIns(filepath.Join(arc, "job-completed.d"))
	assertNothingLeft(t, root)
	if out, _ := o.docker("ps", "-aq", "--filter", "label=io.dindstore.root="+root); strings.TrimSpace(out) != "" {
		t.Fatalf("containers left: %q", out)
	}
	// job-completed with nothing started does nothing, successfully.
	if out, err := r.hook(filepath.Join(r.hooks, "job-completed.sh")); err != nil {
		t.Fatalf("job-completed.sh with nothing started: %v\n%s", err, out)
	}
}
