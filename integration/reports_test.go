//go:build linux

package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dindstore/dindstore/cache"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/sys/unix"
)

// entryJSON is the part of `ls --json` these tests read.
type entryJSON struct {
	Key            string `json:"key"`
	State          string `json:"state"`
	Owner          string `json:"owner"`
	ApparentBytes  int64  `json:"apparent_bytes"`
	AllocatedBytes int64  `json:"allocated_bytes"`
	UsedBytes      int64  `json:"used_bytes"`
	Inodes         uint64 `json:"inodes"`
	InodesUsed     uint64 `json:"inodes_used"`
	UsageSource    string `json:"usage_source"`
	HolderPID      int    `json:"holder_pid"`
	Generation     int    `json:"generation"`
	Hits           int64  `json:"hits"`
	Misses         int64  `json:"misses"`
	PreviousBytes  int64  `json:"previous_bytes"`
	ImageStore     string `json:"image_store"`
	Pinned         string `json:"pinned"`
}

func listJSON(t *testing.T, root string) map[string]entryJSON {
	t.Helper()
	var entries []entryJSON
	r := dindstore(t, root, "ls", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &entries); err != nil {
		t.Fatalf("ls --json: %v: %s", err, r.stdout)
	}
	out := map[string]entryJSON{}
	for _, e := range entries {
		out[e.Key] = e
	}
	return out
}

// holdInBackground runs `dindstore run KEY -- sh -c SCRIPT; sleep` and
// waits until SCRIPT has written {mount}/ready. stop ends it (SIGTERM).
func holdInBackground(t *testing.T, root, key, script string) (pid int, stop func()) {
	t.Helper()
	cmd := exec.Command(binary, "--root", root, "run", key, "--", "sh", "-c", script+"; touch {mount}/ready; exec sleep 600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		}
	}
	t.Cleanup(stop)
	ready := filepath.Join(root, "mounts", key, "ready")
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			return cmd.Process.Pid, stop
		}
	}
	t.Fatalf("%s never got ready", key)
	return 0, nil
}

// TestListSizesMatch: ls --json agrees with stat of the image and statfs of
// the mount, to the byte, in use and after release.
func TestListSizesMatch(t *testing.T) {
	requireSuite(t)
	root := filepath.Join(t.TempDir(), "root")
	t.Cleanup(func() { cleanupRoot(t, root) })
	mustRun(t, root, "create", "sizes", "--kind", "loop", "--size", "1GiB")
	_, stop := holdInBackground(t, root, "sizes",
		"dd if=/dev/urandom of={mount}/blob bs=1M count=24 conv=fsync 2>/dev/null; mkdir {mount}/d; touch {mount}/d/a {mount}/d/b; sync")
	var fs unix.Statfs_t
	must(t, unix.Statfs(filepath.Join(root, "mounts", "sizes"), &fs))
	e := listJSON(t, root)["sizes"]
	img := statImage(t, root, "sizes")
	if e.State != "in-use" || e.UsageSource != "statfs" || e.ApparentBytes != img.Size || e.AllocatedBytes != img.Blocks*512 ||
		e.UsedBytes != int64(fs.Blocks-fs.Bfree)*fs.Bsize || e.Inodes != fs.Files || e.InodesUsed != fs.Files-fs.Ffree {
		t.Fatalf("in use: ls %+v; stat size %d blocks %d; statfs used %d inodes %d/%d",
			e, img.Size, img.Blocks*512, int64(fs.Blocks-fs.Bfree)*fs.Bsize, fs.Files-fs.Ffree, fs.Files)
	}
	stop()
	idle := listJSON(t, root)["sizes"]
	img = statImage(t, root, "sizes")
	if idle.State != "idle" || idle.UsageSource != "release" || idle.UsedBytes != e.UsedBytes ||
		idle.InodesUsed != e.InodesUsed || idle.AllocatedBytes != img.Blocks*512 {
		t.Fatalf("idle: ls %+v, in use it was %+v; stat blocks %d", idle, e, img.Blocks*512)
	}
}

func statImage(t *testing.T, root, key string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	must(t, unix.Stat(filepath.Join(root, "images", key+".img"), &st))
	return st
}

// removalsJSON is the part of `prune --json` these tests read.
type removalsJSON []struct {
	Key     string `json:"key"`
	Removed bool   `json:"removed"`
	Reason  string `json:"reason"`
}

func prune(t *testing.T, root string, args ...string) []string {
	t.Helper()
	r := dindstore(t, root, append([]string{"prune", "--json"}, args...)...)
	if r.code != 0 {
		t.Fatalf("prune %v: exit %d: %s", args, r.code, r.stderr)
	}
	var rms removalsJSON
	if err := json.Unmarshal([]byte(r.stdout), &rms); err != nil {
		t.Fatalf("prune --json: %v: %s", err, r.stdout)
	}
	var keys []string
	for _, rm := range rms {
		keys = append(keys, rm.Key)
	}
	t.Logf("prune %v: %s", args, compactJSON(r.stdout))
	return keys
}

func keysOf(t *testing.T, root string) []string {
	t.Helper()
	var keys []string
	for k := range listJSON(t, root) {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// TestPrunePolicies: each policy removes exactly the caches it names, least
// recently used first, never the one a running `dindstore run` holds; a dry
// run changes nothing; bad values exit 2 and remove nothing.
func TestPrunePolicies(t *testing.T) {
	requireSuite(t)
	host := smallHostFS(t, 768<<20)
	root := filepath.Join(host, "root")
	for _, k := range []string{"p1", "p2", "p3", "p4", "p5"} {
		mustRun(t, root, "run", k, "--kind", "loop", "--size", "256MiB", "--", "sh", "-c",
			"dd if=/dev/urandom of={mount}/blob bs=1M count=40 conv=fsync 2>/dev/null")
	}
	holdInBackground(t, root, "p1", "true") // the newest now, and held

	for _, bad := range [][]string{{"--keep-free", "150%"}, {"--older-than", "yesterday"}, {"--max-count", "x"}, {}} {
		if r := dindstore(t, root, append([]string{"prune"}, bad...)...); r.code != 2 || r.stderr == "" {
			t.Errorf("prune %v: exit %d %q, want 2 and a message", bad, r.code, r.stderr)
		}
	}
	if got := prune(t, root, "--max-count", "3", "--dry-run"); !slices.Equal(got, []string{"p2", "p3"}) {
		t.Fatalf("dry run would remove %v, want [p2 p3]", got)
	}
	if got := keysOf(t, root); len(got) != 5 {
		t.Fatalf("the dry run removed something: %v", got)
	}
	if got := prune(t, root, "--max-count", "3"); !slices.Equal(got, []string{"p2", "p3"}) {
		t.Fatalf("max-count 3 removed %v, want [p2 p3]", got)
	}
	var total int64
	for _, e := range listJSON(t, root) {
		total += e.AllocatedBytes
	}
	if got := prune(t, root, "--max-total", fmt.Sprint(total-1)); !slices.Equal(got, []string{"p4"}) {
		t.Fatalf("max-total removed %v, want [p4]", got)
	}
	if got := prune(t, root, "--keep-free", "99%"); !slices.Equal(got, []string{"p5"}) {
		t.Fatalf("keep-free 99%% removed %v, want [p5] (p1 is held)", got)
	}
	mustRun(t, root, "run", "p6", "--kind", "loop", "--size", "256MiB", "--", "true")
	time.Sleep(2500 * time.Millisecond)
	mustRun(t, root, "run", "p7", "--kind", "loop", "--size", "256MiB", "--", "true")
	if got := prune(t, root, "--older-than", "2s"); !slices.Equal(got, []string{"p6"}) {
		t.Fatalf("older-than 2s removed %v, want [p6]", got)
	}
	if got := keysOf(t, root); !slices.Equal(got, []string{"p1", "p7"}) {
		t.Fatalf("left %v, want [p1 p7]", got)
	}
}

// TestGC: gc removes a loop device and mount that dindstore made and then
// lost (its holder killed, its record gone), and leaves a loop device and
// mount made by hand alone.
func TestGC(t *testing.T) {
	requireSuite(t)
	root := filepath.Join(t.TempDir(), "root")
	t.Cleanup(func() { cleanupRoot(t, root) })
	// Orphan: a holder killed with SIGKILL, then its record deleted.
	killedHolder(t, root, "orphan")
	must(t, os.Remove(filepath.Join(root, "records", "orphan.json")))
	handDev, handMnt := handMadeLoop(t)

	dry := dindstore(t, root, "gc", "--dry-run", "--json")
	if dry.code != 0 || !strings.Contains(dry.stdout, "stale-mount") {
		t.Fatalf("gc --dry-run: exit %d: %s %s", dry.code, dry.stdout, dry.stderr)
	}
	if m, _ := mountedAt(filepath.Join(root, "mounts", "orphan")); !m {
		t.Fatal("the dry run unmounted")
	}
	if r := dindstore(t, root, "gc"); r.code != 0 {
		t.Fatalf("gc: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	assertNothingLeft(t, root)
	if left, _ := filepath.Glob(filepath.Join(root, "*", "orphan*")); len(left) > 0 {
		t.Errorf("gc left %v", left)
	}
	if m, _ := mountedAt(handMnt); !m {
		t.Error("gc unmounted a mount made by hand")
	}
	if out, err := exec.Command("losetup", handDev).CombinedOutput(); err != nil {
		t.Errorf("gc detached a loop device made by hand: %s", out)
	}
}

// handMadeLoop attaches and mounts an ext4 image with losetup and mount,
// outside any dindstore root; both are undone at cleanup.
func handMadeLoop(t *testing.T) (dev, mnt string) {
	t.Helper()
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, "hand.img"), filepath.Join(dir, "mnt")
	must(t, os.Mkdir(mnt, 0o700))
	for _, args := range [][]string{{"truncate", "-s", "64M", img}, {"mkfs.ext4", "-q", img}} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", args, err, out)
		}
	}
	out, err := exec.Command("losetup", "-f", "--show", img).Output()
	if err != nil {
		t.Fatalf("losetup: %v", err)
	}
	dev = strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", dev).Run() })
	if out, err := exec.Command("mount", dev, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	t.Cleanup(func() { _ = unix.Unmount(mnt, 0) })
	return dev, mnt
}

func mountedAt(path string) (bool, error) {
	raw, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 4 && f[4] == path {
			return true, nil
		}
	}
	return false, nil
}

// TestMetrics scrapes `dindstore serve` and reads `metrics --textfile`,
// both parsed with the Prometheus text parser.
func TestMetrics(t *testing.T) {
	requireSuite(t)
	root := filepath.Join(t.TempDir(), "root")
	t.Cleanup(func() { cleanupRoot(t, root) })
	mustRun(t, root, "create", "m1", "--kind", "loop", "--size", "512MiB")
	holdInBackground(t, root, "m1", "true")

	textfile := filepath.Join(t.TempDir(), "dindstore.prom")
	mustRun(t, root, "metrics", "--textfile", textfile)
	f, err := os.Open(textfile)
	must(t, err)
	defer f.Close()
	checkMetrics(t, f)

	addr := serveMetrics(t, root)
	resp, err := http.Get("http://" + addr + "/metrics")
	must(t, err)
	defer resp.Body.Close()
	checkMetrics(t, resp.Body)
}

func checkMetrics(t *testing.T, r io.Reader) {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	families, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("parse metrics: %v", err)
	}
	want := map[string]float64{"dindstore_cache_cap_bytes": 512 << 20, "dindstore_cache_in_use": 1, "dindstore_caches": 1, "dindstore_up": 1}
	for name, v := range want {
		fam, ok := families[name]
		if !ok || len(fam.Metric) != 1 {
			t.Fatalf("metric %s missing", name)
		}
		m := fam.Metric[0]
		got := m.GetGauge().GetValue()
		if got != v {
			t.Errorf("%s = %v, want %v", name, got, v)
		}
	}
	for _, name := range []string{"dindstore_host_free_bytes", "dindstore_cache_allocated_bytes", "dindstore_prune_removed_caches_total"} {
		if _, ok := families[name]; !ok {
			t.Errorf("metric %s missing", name)
		}
	}
	states := map[string]float64{}
	for _, m := range families["dindstore_cache_state"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "state" {
				states[l.GetValue()] = m.GetGauge().GetValue()
			}
		}
	}
	if len(states) != len(cache.States) || states["in-use"] != 1 || states["idle"] != 0 || states["damaged"] != 0 {
		t.Errorf("dindstore_cache_state: %v, want in-use 1 and the other %d states 0", states, len(cache.States)-1)
	}
}

// serveMetrics starts `dindstore serve` on a free port and returns its
// address once it answers; it is stopped at cleanup.
func serveMetrics(t *testing.T, root string) string {
	t.Helper()
	cmd := exec.Command(binary, "--root", root, "serve", "--metrics-addr", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	must(t, err)
	must(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	line, err := bufio.NewReader(stderr).ReadString('\n')
	if err != nil {
		t.Fatalf("serve said nothing: %v", err)
	}
	_, rest, ok := strings.Cut(line, "http://")
	if !ok {
		t.Fatalf("serve: %q", line)
	}
	return strings.TrimSuffix(strings.TrimSpace(rest), "/metrics")
}
