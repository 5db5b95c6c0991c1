//go:build linux

package integration

import (
	"encoding/json"
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
// $GITHUB_ENV (as a workflow run by nektos/act on this host when `make test`
// built it, else as shell steps) — and ARC's drop-in directories by running every file of
// job-started.d/ and job-completed.d/ the same way.

// ghaRunner is one runner slot's environment for the hooks.
type ghaRunner struct {
	t       *testing.T
	env     []string
	hooks   string // directory of the shipped hooks
	o       *outer
	githubE string
}

func newGHARunner(t *testing.T, o *outer, root, image string) *ghaRunner {
	dir := t.TempDir()
	hooks, err := filepath.Abs("../contrib/github-actions")
	must(t, err)
	r := &ghaRunner{t: t, hooks: hooks, o: o, githubE: filepath.Join(dir, "github_env")}
	r.env = append(append(os.Environ(), o.env()...), "GITHUB_REPOSITORY=Acme/Widgets_App", "RUNNER_NAME=runner 1",
		"GITHUB_ENV="+r.githubE, "DINDSTORE="+binary+" --root "+root, "DINDSTORE_DIND_IMAGE="+image,
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

// steps runs a job's steps with what the hooks wrote to GITHUB_ENV: through
// nektos/act on the host platform (`-P ubuntu-latest=-self-hosted`, the
// hook's variables as its --env-file) when DINDSTORE_TEST_ACT names act
// (`make test` builds it), else each as `bash -e -c STEP`. It returns the
// steps' output.
func (r *ghaRunner) steps(steps ...string) string {
	if act := os.Getenv("DINDSTORE_TEST_ACT"); act != "" {
		return r.actSteps(act, steps)
	}
	r.t.Log("DINDSTORE_TEST_ACT is not set: the steps run as plain shell steps")
	b, err := os.ReadFile(r.githubE)
	must(r.t, err)
	var out strings.Builder
	for _, step := range steps {
		cmd := exec.Command("bash", "-e", "-c", step)
		cmd.Env = append(os.Environ(), strings.Fields(string(b))...)
		o, err := cmd.CombinedOutput()
		out.Write(o)
		if err != nil {
			r.t.Fatalf("step %q: %v\n%s", step, err, o)
		}
	}
	return out.String()
}

// actSteps runs the steps as one job of a workflow with act on this host.
func (r *ghaRunner) actSteps(act string, steps []string) string {
	dir := r.t.TempDir()
	wf := "on: push\njobs:\n  job:\n    runs-on: ubuntu-latest\n    steps:\n"
	for _, s := range steps {
		b, _ := json.Marshal(s) // a JSON string is a YAML string
		wf += "      - run: " + string(b) + "\n"
	}
	must(r.t, os.MkdirAll(filepath.Join(dir, ".github", "workflows"), 0o755))
	must(r.t, os.WriteFile(filepath.Join(dir, ".github", "workflows", "job.yml"), []byte(wf), 0o644))
	cmd := exec.Command(act, "push", "-P", "ubuntu-latest=-self-hosted", "--env-file", r.githubE)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CACHE_HOME="+filepath.Join(dir, ".cache"))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Job succeeded") {
		r.t.Fatalf("act: %v\n%s", err, out)
	}
	return string(out)
}

// TestGitHubActionsHooks: two jobs on one runner slot, the first with the
// hooks installed as the runner's hook variables, the second through ARC's
// drop-in directories. Each job's steps reach the inner daemon through
// DOCKER_HOST; the second sees the first's image; nothing is left after.
func TestGitHubActionsHooks(t *testing.T) { forEachEngineRoot(t, gitHubActionsHooks) }

func gitHubActionsHooks(t *testing.T, o *outer, root string, e dindEngine) {
	r := newGHARunner(t, o, root, e.image)

	if out, err := r.hook(filepath.Join(r.hooks, "job-started.sh")); err != nil {
		t.Fatalf("job-started.sh: %v\n%s", err, out)
	}
	tar := filepath.Join(t.TempDir(), "busybox.tar")
	must(t, os.WriteFile(tar, busyboxTar(t), 0o644))
	if out := r.steps(`docker import --change 'CMD ["/bin/sh"]' `+tar+` bb:gha`,
		"docker run --rm --network none bb:gha echo hello from the job"); !strings.Contains(out, "hello from the job") {
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
	if out := r.steps("docker images --format '{{.Repository}}:{{.Tag}}'"); !strings.Contains(out, "bb:gha") {
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

// TestGitHubActionsFromWarm: with DINDSTORE_FROM, the job's steps find the
// warm cache's images, and job-completed removes the job's clone of it.
func TestGitHubActionsFromWarm(t *testing.T) { forEachEngineRoot(t, gitHubActionsFromWarm) }

func gitHubActionsFromWarm(t *testing.T, o *outer, root string, e dindEngine) {
	warmFromHost(t, o, root, "w", "warmimg:1")
	r := newGHARunner(t, o, root, e.image)
	r.env = append(r.env, "DINDSTORE_FROM=w")
	if out, err := r.hook(filepath.Join(r.hooks, "job-started.sh")); err != nil {
		t.Fatalf("job-started.sh: %v\n%s", err, out)
	}
	if out := r.steps("docker images --format '{{.Repository}}:{{.Tag}}'"); !strings.Contains(out, "warmimg:1") {
		t.Fatalf("the job does not see the warm cache's image: %q", out)
	}
	if out, err := r.hook(filepath.Join(r.hooks, "job-completed.sh")); err != nil {
		t.Fatalf("job-completed.sh: %v\n%s", err, out)
	}
	assertNothingLeft(t, root)
	caches := listJSON(t, root)
	if _, ok := caches["w"]; !ok || len(caches) != 1 {
		t.Fatalf("after the job, want only the warm cache: %v", caches)
	}
}
