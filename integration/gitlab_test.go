//go:build linux

package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// gitlab-runner cannot run here (it does not build from the module proxy,
// and `gitlab-runner exec` is gone since v17): these tests play the custom
// executor's documented protocol against the shipped files in
// contrib/gitlab-runner — config_exec, prepare_exec, run_exec SCRIPT STAGE
// for each stage in the runner's order, cleanup_exec — with the
// CUSTOM_ENV_* variables and the failure exit codes the runner passes.

// The failure codes the runner would pass (any numbers; distinct here).
const (
	glBuildFailure  = 17
	glSystemFailure = 18
)

// glStages are the stages of a job in the order the runner runs them
// (after_script runs after a failed step_script too).
var glStages = []string{"prepare_script", "get_sources", "restore_cache", "download_artifacts",
	"step_script", "after_script", "archive_cache", "upload_artifacts_on_success", "cleanup_file_variables"}

// glRunner is a runner host: the executor's files and its environment.
type glRunner struct {
	t     *testing.T
	dir   string // contrib/gitlab-runner
	env   []string
	o     *outer
	root  string
	image string // the dind image (and the jobs' and helper's)
}

// forEachGLRunner runs test with a runner host of each dind engine.
func forEachGLRunner(t *testing.T, test func(t *testing.T, r *glRunner)) {
	requireSuite(t)
	o := startOuter(t, true)
	forEachEngine(t, o, func(t *testing.T, e dindEngine) { test(t, newGLRunner(t, o, e.image)) })
}

func newGLRunner(t *testing.T, o *outer, image string) *glRunner {
	dir, err := filepath.Abs("../contrib/gitlab-runner")
	must(t, err)
	r := &glRunner{t: t, dir: dir, o: o, root: filepath.Join(t.TempDir(), "root"), image: image}
	t.Cleanup(func() { cleanupRoot(t, r.root) })
	r.env = append(append(os.Environ(), o.env()...), "DINDSTORE="+binary+" --root "+r.root,
		"DINDSTORE_DIND_IMAGE="+image, "DINDSTORE_SIZE=4GiB", "DINDSTORE_STATE_DIR="+filepath.Join(t.TempDir(), "state"),
		"DINDSTORE_DOCKERD_ARGS=--bridge=none --iptables=false --ip-masq=false",
		fmt.Sprintf("BUILD_FAILURE_EXIT_CODE=%d", glBuildFailure), fmt.Sprintf("SYSTEM_FAILURE_EXIT_CODE=%d", glSystemFailure))
	return r
}

// glJob is one job: its CUSTOM_ENV_* variables and the scripts of its stages.
type glJob struct {
	r       *glRunner
	id      int
	env     []string
	scripts string
	// stageScripts replace the trivial scripts of the runner's own stages.
	stageScripts map[string]string
}

func (r *glRunner) job(project, slot, id int) *glJob {
	j := &glJob{r: r, id: id, scripts: r.t.TempDir()}
	j.env = append(append([]string{}, r.env...), fmt.Sprintf("CUSTOM_ENV_CI_JOB_ID=%d", id),
		fmt.Sprintf("CUSTOM_ENV_CI_PROJECT_ID=%d", project), fmt.Sprintf("CUSTOM_ENV_CI_CONCURRENT_PROJECT_ID=%d", slot),
		"CUSTOM_ENV_CI_JOB_IMAGE="+r.image, "CUSTOM_ENV_CI_PROJECT_PATH=acme/widgets")
	return j
}

// exec runs one of the executor's files as the runner does.
func (j *glJob) exec(file string, args ...string) (int, string) {
	cmd := exec.Command(filepath.Join(j.r.dir, file), args...)
	cmd.Env = j.env
	out, err := cmd.CombinedOutput()
	return exitStatus(err), string(out)
}

// stage writes script as the stage's script file and runs run_exec on it.
func (j *glJob) stage(name, script string) (int, string) {
	p := filepath.Join(j.scripts, name)
	must(j.r.t, os.WriteFile(p, []byte("set -e\n"+script+"\n"), 0o644))
	return j.exec("run.sh", p, name)
}

// run plays a whole job: config, prepare, every stage (the step_script
// given, the others trivial; after a failed stage only after_script and
// cleanup_file_variables; none after a failed prepare), cleanup. It returns the job's exit status (the
// first failing stage's) and its output.
func (j *glJob) run(step string) (int, string) {
	t := j.r.t
	code, out := j.exec("config.sh")
	var cfg struct {
		BuildsDir string `json:"builds_dir"`
		Driver    struct{ Name string }
	}
	if code != 0 || json.Unmarshal([]byte(out), &cfg) != nil || cfg.BuildsDir == "" || cfg.Driver.Name != "dindstore" {
		t.Fatalf("config.sh: exit %d, %q", code, out)
	}
	log := &strings.Builder{}
	status := 0
	prepared := true
	if code, out := j.exec("prepare.sh"); code != 0 {
		status, prepared = code, false
		log.WriteString(out)
	}
	for _, s := range glStages {
		if !prepared || status != 0 && s != "after_script" && s != "cleanup_file_variables" {
			continue
		}
		script := "echo stage " + s
		if custom, ok := j.stageScripts[s]; ok {
			script = custom
		}
		if s == "step_script" {
			script = step
		}
		if code, out := j.stage(s, script); code != 0 && status == 0 {
			status = code
			log.WriteString(out)
		} else {
			log.WriteString(out)
		}
	}
	if code, out := j.exec("cleanup.sh"); code != 0 {
		t.Errorf("cleanup.sh of job %d: exit %d: %s", j.id, code, out)
	}
	return status, log.String()
}

// nothingLeft checks that no container, network, mount or loop device of
// the runner's jobs is left.
func (r *glRunner) nothingLeft() {
	r.t.Helper()
	assertNothingLeft(r.t, r.root)
	if out, _ := r.o.docker("ps", "-aq"); strings.TrimSpace(out) != "" {
		r.t.Errorf("containers left: %q", out)
	}
	if out, _ := r.o.docker("network", "ls", "-q", "--filter", "name=dindstore-job-"); strings.TrimSpace(out) != "" {
		r.t.Errorf("networks left: %q", out)
	}
}

// glBuild builds an image from a Dockerfile with the inner daemon and runs
// it: a base image imported from the job container's busybox, then
// `docker build` and `docker run`, all over DOCKER_HOST with TLS.
const glBuild = `test "$DOCKER_HOST" = tcp://docker:2376 && test "$DOCKER_TLS_VERIFY" = 1
mkdir -p /tmp/ctx/r && cp /bin/busybox /tmp/ctx/r/busybox
tar -C /tmp/ctx/r -c . | docker import - base:gl > /dev/null
printf 'FROM base:gl\nRUN ["/busybox", "sh", "-c", "echo built in the job > /built"]\nCMD ["/busybox", "cat", "/built"]\n' > /tmp/ctx/Dockerfile
DOCKER_BUILDKIT=0 docker build -q --network none -t job:gl /tmp/ctx
docker run --rm --network none job:gl`

// TestGitLabCustomExecutor: a job that builds an image and runs it through
// the inner daemon; the next job on the slot sees its images; two jobs of
// one project at once on two caches; a failing job (the build failure
// code, after_script still runs); a job cancelled in step_script (SIGTERM
// to run_exec, then cleanup); the runner's own stages in a helper
// container; a dind container that dies mid-job; a prepare that fails half
// way (the system failure code). Nothing is left after any of them.
func TestGitLabCustomExecutor(t *testing.T) { forEachGLRunner(t, gitLabCustomExecutor) }

func gitLabCustomExecutor(t *testing.T, r *glRunner) {
	code, out := r.job(7, 0, 101).run(glBuild)
	first := out
	if code != 0 || !strings.Contains(out, "built in the job") {
		t.Fatalf("build job: exit %d\n%s", code, out)
	}
	r.nothingLeft()

	next := r.job(7, 0, 102) // a job that names no image: the runner's default
	next.env = append(slices.DeleteFunc(next.env, func(e string) bool { return strings.HasPrefix(e, "CUSTOM_ENV_CI_JOB_IMAGE=") }),
		"DINDSTORE_DEFAULT_IMAGE="+r.image)
	code, out = next.run("docker images --format '{{.Repository}}:{{.Tag}}'")
	if code != 0 || !strings.Contains(out, "job:gl") || !strings.Contains(out, "base:gl") {
		t.Fatalf("the next job on the slot does not see the first one's images: exit %d\n%s", code, out)
	}
	r.nothingLeft()

	var wg sync.WaitGroup
	codes, outs := make([]int, 2), make([]string, 2)
	for slot := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[slot], outs[slot] = r.job(7, slot, 103+slot).run(`echo "slot on $(docker info --format '{{.Name}}')"; sleep 1`)
		}()
	}
	wg.Wait()
	for slot := range 2 {
		if codes[slot] != 0 || !strings.Contains(outs[slot], "slot on") {
			t.Errorf("concurrent job on slot %d: exit %d\n%s", slot, codes[slot], outs[slot])
		}
	}
	r.nothingLeft()

	if code, out := r.job(7, 0, 105).run("echo failing; exit 3"); code != glBuildFailure ||
		!strings.Contains(out, "stage after_script") {
		t.Fatalf("failing job: exit %d (want the build failure code %d, after_script run)\n%s", code, glBuildFailure, out)
	}
	r.nothingLeft()

	r.cancelled(r.job(7, 0, 106))
	r.nothingLeft()

	// With a helper image, the runner's own stages run in a helper container
	// that shares /builds with the job container.
	j := r.job(7, 0, 108)
	j.env = append(j.env, "DINDSTORE_HELPER_IMAGE="+j.r.image)
	j.stageScripts = map[string]string{"get_sources": "mkdir -p /builds/acme && hostname > /builds/acme/fetched-on"}
	if code, out := j.run(`test -s /builds/acme/fetched-on && test "$(cat /builds/acme/fetched-on)" != "$(hostname)" && echo sources from the helper`); code != 0 ||
		!strings.Contains(out, "sources from the helper") {
		t.Fatalf("job with a helper: exit %d\n%s", code, out)
	}
	r.nothingLeft()

	// The dind container dies in the middle of the job (removed behind the
	// executor's back): the step fails as the build's failure, the lease
	// ends with its container, and cleanup still leaves nothing.
	j = r.job(7, 0, 109)
	if code, out := j.exec("prepare.sh"); code != 0 {
		t.Fatalf("prepare.sh: exit %d: %s", code, out)
	}
	mustDocker(t, r.o, "rm", "-f", "dindstore-dind-109")
	if code, _ := j.stage("step_script", "docker version"); code != glBuildFailure {
		t.Errorf("a step against a dead dind: exit %d, want the build failure code %d", code, glBuildFailure)
	}
	if code, out := j.exec("cleanup.sh"); code != 0 {
		t.Errorf("cleanup after the dind died: exit %d: %s", code, out)
	}
	r.nothingLeft()

	// A prepare that fails half way (the job's image cannot be had, after
	// the network and the dind container are up) is the system's failure,
	// and cleanup still leaves nothing.
	j = r.job(7, 0, 107)
	j.env = append(j.env, "CUSTOM_ENV_CI_JOB_IMAGE=dindstore-test/no-such-image:1")
	if code, out := j.run("echo never"); code != glSystemFailure {
		t.Fatalf("job with a missing image: exit %d, want the system failure code %d\n%s", code, glSystemFailure, out)
	}
	r.nothingLeft()
	t.Logf("the build job's output:\n%s", first)
}

// cancelled plays a job cancelled while its step_script runs: SIGTERM to
// run_exec, as the runner sends, then cleanup_exec.
func (r *glRunner) cancelled(j *glJob) {
	t := r.t
	if code, out := j.exec("prepare.sh"); code != 0 {
		t.Fatalf("prepare.sh: exit %d: %s", code, out)
	}
	p := filepath.Join(j.scripts, "step_script")
	must(t, os.WriteFile(p, []byte("echo started > /builds/started; sleep 600\n"), 0o644))
	cmd := exec.Command(filepath.Join(r.dir, "run.sh"), p, "step_script")
	cmd.Env = j.env
	must(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	started := filepath.Join(envValue(j.env, "DINDSTORE_STATE_DIR"), fmt.Sprintf("job-%d", j.id), "builds", "started")
	for deadline := time.Now().Add(30 * time.Second); !exists(started); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the step_script did not start")
		}
	}
	must(t, cmd.Process.Signal(syscall.SIGTERM))
	if code := exitStatus(cmd.Wait()); code != glBuildFailure {
		t.Errorf("cancelled run_exec: exit %d, want the build failure code %d", code, glBuildFailure)
	}
	if code, out := j.exec("cleanup.sh"); code != 0 {
		t.Errorf("cleanup.sh after the cancel: exit %d: %s", code, out)
	}
}

// exitStatus is a finished command's exit status (-1 when it did not run
// or was killed).
func exitStatus(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

func envValue(env []string, name string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], name+"="); ok {
			return v
		}
	}
	return ""
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// TestGitLabFromWarm: with DINDSTORE_FROM set on the runner, each job's
// dind starts on a clone of the warm cache (its images there from the
// first step), and the clone goes with the job: the warm cache stays, the
// slot's cache does not.
func TestGitLabFromWarm(t *testing.T) { forEachGLRunner(t, gitLabFromWarm) }

func gitLabFromWarm(t *testing.T, r *glRunner) {
	warmFromHost(t, r.o, r.root, "w", "warmimg:1")
	j := r.job(8, 0, 201)
	j.env = append(j.env, "DINDSTORE_FROM=w")
	if code, out := j.run("docker images --format '{{.Repository}}:{{.Tag}}'"); code != 0 || !strings.Contains(out, "warmimg:1") {
		t.Fatalf("job on a clone of the warm cache: exit %d\n%s", code, out)
	}
	r.nothingLeft()
	caches := listJSON(t, r.root)
	if _, ok := caches["w"]; !ok {
		t.Error("the warm cache is gone")
	}
	if _, ok := caches["gitlab-p8-s0"]; ok {
		t.Error("the job's clone of the warm cache stayed behind")
	}
}

// warmFromHost makes a warm cache key of root holding image, imported on
// the outer daemon from busybox and copied in by `dindstore warm`.
func warmFromHost(t *testing.T, o *outer, root, key, image string) {
	t.Helper()
	if _, err := dockerStdin(o.sock, busyboxTar(t), "import", "-", image); err != nil {
		t.Fatal(err)
	}
	if w := runBinary(t, binary, o.env(), root, "warm", key, "--kind", "loop", "--size", "4GiB",
		"--from-host", image); w.code != 0 {
		t.Fatalf("warm: exit %d: %s", w.code, w.stderr)
	}
}
