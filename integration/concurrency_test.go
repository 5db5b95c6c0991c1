//go:build linux

package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// runParallel starts n `dindstore run` at once (args(i) gives the i-th
// command line after --root) and returns their results.
func runParallel(t testing.TB, root string, n int, args func(i int) []string) []result {
	t.Helper()
	results := make([]result, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			results[i] = dindstoreTB(t, root, args(i)...)
		}(i)
	}
	close(start)
	wg.Wait()
	return results
}

// TestParallelDistinctKeys: 32 runs of distinct loop caches at once all
// succeed, and nothing is left when they end.
func TestParallelDistinctKeys(t *testing.T) {
	requireSuite(t)
	root := filepath.Join(t.TempDir(), "root")
	t.Cleanup(func() { cleanupRoot(t, root) })
	results := runParallel(t, root, 32, parallelRun)
	for i, r := range results {
		if r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("ok %d", i)) {
			t.Errorf("run %d: exit %d, %q %q", i, r.code, r.stdout, r.stderr)
		}
	}
	assertNothingLeft(t, root)
}

func parallelRun(i int) []string {
	return []string{"run", fmt.Sprintf("it-par-%d", i), "--kind", "loop", "--size", "256MiB", "--",
		"sh", "-c", fmt.Sprintf("echo ok %d > {mount}/f && cat {mount}/f", i)}
}

// BenchmarkParallelRuns32 times 32 `dindstore run` of distinct, existing
// loop caches started at once (create, when needed, is outside the timing).
func BenchmarkParallelRuns32(b *testing.B) {
	if skipReason != "" {
		b.Skip("skipping: " + skipReason)
	}
	root := filepath.Join(b.TempDir(), "root")
	b.Cleanup(func() { cleanupRoot(b, root) })
	runParallel(b, root, 32, parallelRun) // creates the caches
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j, r := range runParallel(b, root, 32, parallelRun) {
			if r.code != 0 {
				b.Fatalf("run %d: exit %d: %s", j, r.code, r.stderr)
			}
		}
	}
}

// TestRaceForOneKey: 16 processes race for one cache; every one that gets
// it logs its start and end inside the cache, and the log shows no overlap;
// the others exit 75.
func TestRaceForOneKey(t *testing.T) {
	requireSuite(t)
	root := filepath.Join(t.TempDir(), "root")
	t.Cleanup(func() { cleanupRoot(t, root) })
	if r := dindstore(t, root, "create", "it-race", "--kind", "loop", "--size", "256MiB"); r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	script := `echo "start $$" >> {mount}/log; sleep 0.2; echo "end $$" >> {mount}/log`
	results := runParallel(t, root, 16, func(int) []string { return []string{"run", "it-race", "--", "sh", "-c", script} })
	won := 0
	for i, r := range results {
		switch r.code {
		case 0:
			won++
		case 75:
			if !strings.Contains(r.stderr, "in use by pid") {
				t.Errorf("run %d refused without naming the holder: %q", i, r.stderr)
			}
		default:
			t.Errorf("run %d: exit %d: %s", i, r.code, r.stderr)
		}
	}
	out := dindstore(t, root, "run", "it-race", "--", "cat", "{mount}/log")
	checkNoOverlap(t, out.stdout, won)
	assertNothingLeft(t, root)
}

// checkNoOverlap reads a log of "start PID"/"end PID" lines and checks that
// every start is followed by its own end before anyone else starts.
func checkNoOverlap(t *testing.T, log string, want int) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(log))
	holder, sessions := "", 0
	for sc.Scan() {
		what, pid, _ := strings.Cut(sc.Text(), " ")
		switch {
		case what == "start" && holder == "":
			holder = pid
		case what == "end" && holder == pid:
			holder, sessions = "", sessions+1
		default:
			t.Fatalf("two holders at once: %q while %q held it:\n%s", sc.Text(), holder, log)
		}
	}
	if sessions != want || want < 1 {
		t.Fatalf("%d sessions in the log, %d runs succeeded:\n%s", sessions, want, log)
	}
}

// TestKilledHolder: a holder killed with SIGKILL takes its command with it
// (parent-death signal); the next run takes the cache over at once, says
// so, and finds the data.
func TestKilledHolder(t *testing.T) {
	requireSuite(t)
	root := filepath.Join(t.TempDir(), "root")
	t.Cleanup(func() { cleanupRoot(t, root) })
	pid := killedHolder(t, root, "it-killed")
	r := dindstore(t, root, "run", "it-killed", "--", "cat", "{mount}/f")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "data" {
		t.Fatalf("run after SIGKILL: exit %d, %q, %q", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "took over") || !strings.Contains(r.stderr, fmt.Sprint(pid)) {
		t.Errorf("the takeover is not reported with the dead pid %d: %q", pid, r.stderr)
	}
	assertNothingLeft(t, root)
}

// killedHolder runs `dindstore run KEY` (a loop cache, "data" written to
// {mount}/f, then a long sleep), kills it with SIGKILL once it holds the
// cache, and returns its pid: what a crashed holder leaves behind.
func killedHolder(t *testing.T, root, key string) int {
	t.Helper()
	cmd := exec.Command(binary, "--root", root, "run", key, "--kind", "loop", "--size", "256MiB", "--",
		"sh", "-c", "echo data > {mount}/f; exec sleep 600")
	must(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitInUse(t, root, key)
	killGuardOf(t, root, cmd.Process.Pid) // what the guard would do, the next use must do
	must(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	return cmd.Process.Pid
}

// waitIdle polls ls until the cache is idle, failing after d.
func waitIdle(t *testing.T, root, key string, d time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(d); listJSON(t, root)[key].State != "idle"; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("cache %s is still held after %s", key, d)
		}
	}
}

// waitInUse polls ls until the cache is in use and its data written.
func waitInUse(t *testing.T, root, key string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var entries []map[string]any
		r := dindstore(t, root, "ls", "--json")
		if json.Unmarshal([]byte(r.stdout), &entries) == nil && len(entries) == 1 && entries[0]["state"] == "in-use" {
			if _, err := os.Stat(filepath.Join(root, "mounts", key, "f")); err == nil {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never came into use", key)
}
