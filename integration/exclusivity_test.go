//go:build linux

package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dindstore/dindstore/loopdev"
)

// escapeScript starts, in the background, a writer in a mount namespace of
// its own (so its copy of the mount keeps the cache's filesystem alive when
// the holder's namespace drops it), with a grandchild of its own, then
// writes "data" and sleeps in the foreground.
const escapeScript = `sh "$DINDSTORE_TEST_PRIVATE_NS" "$DINDSTORE_MOUNT" sh -c 'while :; do echo x >> "$DINDSTORE_MOUNT/log"; sleep 0.05; done' &
echo data > {mount}/f; exec sleep 600`

// killHolderWithTree runs `dindstore run KEY -- sh -c SCRIPT` on a loop
// cache, waits until it holds the cache, {mount}/f exists and a process
// with marker runs, SIGKILLs the holder alone, and returns its pid. With
// killGuard, the holder's guard is killed first: what a host where every
// dindstore process was killed at once leaves (the next use or recover
// must then end the tree).
func killHolderWithTree(t *testing.T, root, key, script, marker string, killGuard bool) int {
	t.Helper()
	cmd := exec.Command(binary, "--root", root, "run", key, "--kind", "loop", "--size", "256MiB", "--",
		"sh", "-c", script)
	must(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitInUse(t, root, key)
	for deadline := time.Now().Add(10 * time.Second); len(writersOf(t, marker)) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no process with %q started: the test does not test anything", marker)
		}
	}
	if killGuard {
		killGuardOf(t, root, cmd.Process.Pid)
	} else {
		guardOf(t, root, cmd.Process.Pid) // the lease is guarded once it has run a moment
	}
	must(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	return cmd.Process.Pid
}

// killGuardOf SIGKILLs the guard that watches holder.
func killGuardOf(t *testing.T, root string, holder int) {
	t.Helper()
	must(t, syscall.Kill(guardOf(t, root, holder), syscall.SIGKILL))
}

// guardOf waits for the guard of holder (it starts once the lease has run
// for a moment) to watch it — a pidfd on the holder among its descriptors —
// and returns its pid.
func guardOf(t *testing.T, root string, holder int) int {
	t.Helper()
	want := []string{"--root", root, "guard"}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, p := range procs {
			b, _ := os.ReadFile(p)
			argv := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
			if len(argv) > 6 && slices.Equal(argv[1:4], want) && argv[len(argv)-1] == strconv.Itoa(holder) {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
				if watches(pid, holder) {
					return pid
				}
			}
		}
	}
	t.Fatalf("no guard of holder %d found watching it", holder)
	return 0
}

// watches says whether process pid holds a pidfd on target.
func watches(pid, target int) bool {
	infos, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fdinfo/*", pid))
	for _, f := range infos {
		if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), fmt.Sprintf("\nPid:\t%d\n", target)) {
			return true
		}
	}
	return false
}

// escapedTree leaves a dead lease of key whose writer, in a mount
// namespace of its own, still writes to the cache; it returns the root,
// the key and the writer's command-line marker.
func escapedTree(t *testing.T, key string, killGuard bool) (root, k, marker string) {
	requireSuite(t)
	root, marker = filepath.Join(t.TempDir(), "root"), "DINDSTORE_MOUNT/log"
	t.Cleanup(func() { killPids(writersOf(t, marker)); time.Sleep(100 * time.Millisecond); cleanupRoot(t, root) })
	killHolderWithTree(t, root, key, escapeScript, marker, killGuard)
	if killGuard && len(writersOf(t, marker)) == 0 {
		t.Fatal("the escaped writer is not running: the test does not test anything")
	}
	return root, key, marker
}

// boundDevices counts the loop devices bound to the cache's image.
func boundDevices(t *testing.T, root, key string) int {
	t.Helper()
	devs, err := loopdev.FindByFile(filepath.Join(root, "images", key+".img"))
	if err != nil {
		t.Fatal(err)
	}
	return len(devs)
}

// writersOf lists the pids of the test's own tree processes: a sh, unshare
// or sleep whose command line holds marker (never a shell of the person
// running the tests whose script merely mentions it).
func writersOf(t *testing.T, marker string) []int {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var out []int
	for _, p := range procs {
		b, err := os.ReadFile(p)
		argv := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if err != nil || !slices.Contains([]string{"sh", "unshare", "sleep"}, filepath.Base(argv[0])) ||
			!strings.Contains(strings.Join(argv, " "), marker) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if pid != os.Getpid() {
			out = append(out, pid)
		}
	}
	return out
}

// killPids is the safety net: the test's own escaped processes, by pid.
func killPids(pids []int) {
	for _, p := range pids {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
}

// TestKilledHolderTreeInOtherNamespace: a holder SIGKILLed while a
// descendant in a mount namespace of its own still writes to the cache. The
// next run must never bind the image a second time; it ends the dead
// lease's tree, and finds the data.
func TestKilledHolderTreeInOtherNamespace(t *testing.T) {
	root, key, marker := escapedTree(t, "it-escape", true)
	if r := dindstore(t, root, "recover", "--dry-run"); strings.Contains(r.stdout, "cleared") {
		t.Errorf("recover --dry-run claims to have cleared something: %s", r.stdout)
	}
	r := runWatchingImage(t, root, key, 30*time.Second, "run", key, "--", "cat", "{mount}/f")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "data" {
		t.Fatalf("run after SIGKILL: exit %d, %q, %q", r.code, r.stdout, r.stderr)
	}
	if w := writersOf(t, marker); len(w) > 0 {
		t.Errorf("the dead lease's writer(s) %v survive the next run", w)
	}
	if !strings.Contains(r.stderr, "ended") {
		t.Errorf("the next run does not say it ended the dead lease's processes: %q", r.stderr)
	}
	assertNothingLeft(t, root)
}

// runWatchingImage runs dindstore with args while checking, all along,
// that never more than one loop device is bound to key's image.
func runWatchingImage(t *testing.T, root, key string, limit time.Duration, args ...string) result {
	t.Helper()
	done := make(chan result, 1)
	go func() { done <- dindstore(t, root, args...) }()
	for deadline := time.Now().Add(limit); ; time.Sleep(20 * time.Millisecond) {
		if n := boundDevices(t, root, key); n > 1 {
			t.Fatalf("%d loop devices bound to one image at once", n)
		}
		select {
		case r := <-done:
			return r
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("dindstore %v did not finish within %s", args, limit)
		}
	}
}

// TestRecoverEndsDeadLease: recover ends the tree of a dead lease, reports
// it, and only then says the loop device is gone.
func TestRecoverEndsDeadLease(t *testing.T) {
	root, key, marker := escapedTree(t, "it-escape-rec", true)
	if l := listJSON(t, root)[key]; l.State != "orphaned" {
		t.Errorf("ls calls a dead lease whose tree still uses the image %q, want orphaned", l.State)
	}
	r := dindstore(t, root, "recover")
	if r.code != 0 {
		t.Fatalf("recover: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	if w := writersOf(t, marker); len(w) > 0 {
		t.Errorf("recover left the dead lease's writer(s) %v", w)
	}
	if n := boundDevices(t, root, key); n != 0 {
		t.Errorf("recover left %d loop device(s) bound: %s", n, r.stdout)
	}
	assertNothingLeft(t, root)
}

// TestForeignUserNamed: a process that never was part of a lease keeps the
// cache's filesystem alive from a mount namespace of its own. The next run
// is refused (75) naming it; --kill-users ends it and goes on.
func TestForeignUserNamed(t *testing.T) { testForeignUser(t, "loop") }

// TestForeignUserNamedDir: the same for a dir cache, whose bind mount a
// mount namespace of its own keeps.
func TestForeignUserNamedDir(t *testing.T) { testForeignUser(t, "dir") }

func testForeignUser(t *testing.T, kind string) {
	requireSuite(t)
	root := filepath.Join(t.TempDir(), "root")
	key := "it-foreign-" + kind
	t.Cleanup(func() { cleanupRoot(t, root) })
	mustRun(t, root, "create", key, "--kind", kind, "--size", "256MiB")
	_, stop := holdInBackground(t, root, key, "true")
	mnt := filepath.Join(root, "mounts", key)
	foreign := exec.Command("sh", privateNS, mnt, "sh", "-c", fmt.Sprintf("cd %s && exec sleep 600 # it-foreign-user", mnt))
	must(t, foreign.Start())
	t.Cleanup(func() { _ = foreign.Process.Kill(); _ = foreign.Wait() })
	time.Sleep(200 * time.Millisecond)
	stop()
	r := dindstore(t, root, "run", key, "--", "true")
	if r.code != 75 || !strings.Contains(r.stderr, strconv.Itoa(foreign.Process.Pid)) {
		t.Fatalf("run while a foreign process uses the %s cache: exit %d, %q (want 75 naming pid %d)",
			kind, r.code, r.stderr, foreign.Process.Pid)
	}
	if kind == "loop" && boundDevices(t, root, key) > 1 {
		t.Fatal("two loop devices bound to one image")
	}
	if syscall.Kill(foreign.Process.Pid, 0) != nil {
		t.Fatal("the foreign process was killed without --kill-users")
	}
	r = dindstore(t, root, "run", key, "--kill-users", "--", "true")
	if r.code != 0 {
		t.Fatalf("run --kill-users: exit %d, %q", r.code, r.stderr)
	}
	_ = foreign.Wait()
	assertNothingLeft(t, root)
}

// TestStopTimeoutEscalates: SIGTERM to run whose command ignores SIGTERM
// ends the whole tree with SIGKILL after --stop-timeout, releases the
// cache and exits 143.
func TestStopTimeoutEscalates(t *testing.T) {
	requireSuite(t)
	root := filepath.Join(t.TempDir(), "root")
	key := "it-stop"
	t.Cleanup(func() { killPids(writersOf(t, "sleep 613")); cleanupRoot(t, root) })
	cmd := exec.Command(binary, "--root", root, "run", key, "--kind", "loop", "--size", "256MiB",
		"--stop-timeout", "1s", "--", "sh", "-c",
		`trap "" TERM; (trap "" TERM; sleep 613; true) & echo data > {mount}/f; while :; do sleep 1; done`)
	must(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitInUse(t, root, key)
	start := time.Now()
	must(t, cmd.Process.Signal(syscall.SIGTERM))
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		t.Fatal("run did not escalate: still running 20s after SIGTERM with --stop-timeout 1s")
	}
	if code := cmd.ProcessState.ExitCode(); code != 143 {
		t.Errorf("run exited %d after escalation, want 143", code)
	}
	t.Logf("SIGTERM to exit: %s", time.Since(start))
	if w := writersOf(t, "sleep 613"); len(w) > 0 {
		killPids(w)
		t.Errorf("grandchild %v survived the escalation", w)
	}
	assertNothingLeft(t, root)
}

// TestKilledHolderWithDockerd: `dindstore run KEY -- dockerd` with five
// containers writing to their layers; SIGKILL of the holder alone. The
// containerd shims and the containers outlive it, in mount and PID
// namespaces of their own. The next run ends them all, never binds the
// image twice, and the daemon's image is still there.
func TestKilledHolderWithDockerd(t *testing.T) {
	requireSuite(t)
	root := filepath.Join(t.TempDir(), "root")
	key := "it-dkill"
	marker := "it-dkill-writer"
	t.Cleanup(func() { killPids(writersOf(t, marker)); time.Sleep(200 * time.Millisecond) })
	d := startDaemon(t, root, key, []string{"--kind", "loop", "--size", "2GiB"})
	if _, err := dockerStdin(d.sock, busyboxTar(t), "import", "--change", `CMD ["/bin/sh"]`, "-", "bb:local"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if out, err := d.docker("run", "-d", "--network", "none", "bb:local", "sh", "-c",
			"while :; do echo "+marker+" >> /log; sleep 0.1; done"); err != nil {
			t.Fatalf("container %d: %v: %s", i, err, out)
		}
	}
	killGuardOf(t, root, d.cmd.Process.Pid) // the next run must do the guard's work
	must(t, d.cmd.Process.Signal(syscall.SIGKILL))
	<-d.exited
	time.Sleep(500 * time.Millisecond) // dockerd dies of its parent-death signal
	if n := len(writersOf(t, marker)); n < 5 {
		t.Fatalf("%d container processes outlived the holder, want 5 (the test tests nothing)", n)
	}
	r := runWatchingImage(t, root, key, 60*time.Second, "run", key, "--", "ls", "{mount}")
	if r.code != 0 {
		t.Fatalf("run after SIGKILL: exit %d, %q", r.code, r.stderr)
	}
	t.Logf("next run: %s", strings.TrimSpace(r.stderr))
	if w := writersOf(t, marker); len(w) > 0 {
		t.Fatalf("container processes %v survived the next run", w)
	}
	assertNothingLeft(t, root)
	d2 := startDaemon(t, root, key, nil)
	if out, err := d2.docker("images", "--format", "{{.Repository}}"); err != nil || !strings.Contains(out, "bb") {
		t.Fatalf("the image is gone after the takeover: %q, %v", out, err)
	}
	d2.stop()
	assertNothingLeft(t, root)
}

// TestGuardEndsTreeAtOnce: with nothing else run after the SIGKILL of the
// holder, its guard ends the tree, unmounts and detaches within seconds;
// the next run finds nothing to take over.
func TestGuardEndsTreeAtOnce(t *testing.T) {
	root, key, marker := escapedTree(t, "it-guard", false)
	deadline := time.Now().Add(15 * time.Second)
	for len(writersOf(t, marker)) > 0 || boundDevices(t, root, key) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("15s after the holder's SIGKILL: writers %v, %d loop devices bound",
				writersOf(t, marker), boundDevices(t, root, key))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := listJSON(t, root)[key].State; st != "idle" {
		t.Errorf("after the guard, ls says %q", st)
	}
	assertNothingLeft(t, root)
	r := dindstore(t, root, "run", key, "--", "cat", "{mount}/f")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "data" || strings.Contains(r.stderr, "took over") {
		t.Fatalf("run after the guard: exit %d, %q, %q", r.code, r.stdout, r.stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "logs", key+".log")); !strings.Contains(string(b), "dead-lease") {
		t.Errorf("the guard did not log what it did: %q", b)
	}
}

// TestRaceAfterKill: right after a holder's SIGKILL, its guard, a run, a
// recover, an ls and a trim of the key race; the run waits for the guard
// instead of failing, and never are two devices bound to the image.
func TestRaceAfterKill(t *testing.T) {
	root, key, _ := escapedTree(t, "it-race", false)
	type out struct {
		name string
		r    result
	}
	results := make(chan out, 4)
	for _, args := range [][]string{{"run", key, "--", "cat", "{mount}/f"}, {"recover"}, {"ls"}, {"trim", key}} {
		go func() { results <- out{args[0], dindstore(t, root, args...)} }()
	}
	for i := 0; i < 4; i++ {
		if n := boundDevices(t, root, key); n > 1 {
			t.Fatalf("%d loop devices bound to one image", n)
		}
		o := <-results
		switch {
		case o.name == "run" && (o.r.code != 0 || strings.TrimSpace(o.r.stdout) != "data"):
			t.Errorf("run racing the guard: exit %d, %q, %q", o.r.code, o.r.stdout, o.r.stderr)
		case o.name != "run" && o.r.code != 0 && o.r.code != 75:
			t.Errorf("%s racing the guard: exit %d, %s", o.name, o.r.code, o.r.stderr)
		}
	}
	waitGuards(t, root)
	assertNothingLeft(t, root)
}
