//go:build linux

package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestRunLoop(t *testing.T) { testRunKind(t, "loop", "extfs") }
func TestRunDir(t *testing.T)  { testRunKind(t, "dir", "extfs") }
func TestRunVFS(t *testing.T)  { testRunKind(t, "vfs", "") }

// testRunKind runs a real dockerd on a cache of the kind, checks the storage
// driver, runs a container, checks that a second run is refused while the
// first holds the cache, and that the image persists to a second run.
func testRunKind(t *testing.T, kind, backingFS string) {
	requireSuite(t)
	root := filepath.Join(t.TempDir(), "root")
	key := "it-" + kind
	flags := []string{"--kind", kind, "--size", "4GiB"}
	var dockerdFlags []string
	driver := "overlay2"
	if kind == "vfs" {
		dockerdFlags, driver = []string{"--storage-driver", "vfs"}, "vfs"
	}
	d := startDaemon(t, root, key, flags, dockerdFlags...)
	if inModernLane && kind != "vfs" {
		driver, backingFS = "overlayfs", "" // the containerd image store, Docker 29's default
		checkExtfs(t, root, key)
	}
	checkDriver(t, d, driver, backingFS)
	if _, err := dockerStdin(d.sock, busyboxTar(t), "import", "--change", `CMD ["/bin/sh"]`, "-", "bb:local"); err != nil {
		t.Fatal(err)
	}
	out, err := d.docker("run", "--rm", "--network", "none", "bb:local", "echo", "hello from "+kind)
	if err != nil || !strings.Contains(out, "hello from "+kind) {
		t.Fatalf("container run: %q, %v", out, err)
	}
	checkSecondRunRefused(t, root, key, d.cmd.Process.Pid)
	checkListed(t, root, key, kind, d.cmd.Process.Pid)

	if code := d.stop(); code != 0 && code != 143 {
		t.Errorf("dindstore run exited %d after SIGTERM:\n%s", code, d.logs())
	}
	assertNothingLeft(t, root)

	d2 := startDaemon(t, root, key, nil, dockerdFlags...)
	if out, err := d2.docker("images", "--format", "{{.Repository}}:{{.Tag}}"); err != nil || !strings.Contains(out, "bb:local") {
		t.Fatalf("the second run does not see the first run's image: %q, %v", out, err)
	}
	d2.stop()
	assertNothingLeft(t, root)
}

func checkDriver(t *testing.T, d *daemon, driver, backingFS string) {
	t.Helper()
	out, err := d.docker("info", "--format", "{{.Driver}} {{json .DriverStatus}}")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, driver+" ") {
		t.Fatalf("docker info driver: %q, want %s", out, driver)
	}
	if backingFS != "" && !strings.Contains(out, `["Backing Filesystem","`+backingFS+`"]`) {
		t.Fatalf("docker info: %q, want backing filesystem %s", out, backingFS)
	}
	t.Logf("docker info: %s", strings.TrimSpace(out))
}

// checkExtfs checks that the cache under the daemon is ext4 (the containerd
// snapshotter's docker info does not name its backing filesystem).
func checkExtfs(t *testing.T, root, key string) {
	t.Helper()
	if fs, err := overlayFSType(filepath.Join(root, "mounts", key)); err != nil || (key == "it-loop" && fs != "ext4") {
		t.Fatalf("the cache is on %q (%v), want ext4", fs, err)
	}
}

func checkSecondRunRefused(t *testing.T, root, key string, holder int) {
	t.Helper()
	r := dindstore(t, root, "run", key, "--", "true")
	if r.code != 75 {
		t.Fatalf("second run exited %d, want 75:\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "pid "+strconv.Itoa(holder)) {
		t.Fatalf("refusal does not name holder pid %d: %q", holder, r.stderr)
	}
}

func checkListed(t *testing.T, root, key, kind string, holder int) {
	t.Helper()
	r := dindstore(t, root, "ls", "--json")
	var entries []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &entries); err != nil || len(entries) != 1 {
		t.Fatalf("ls --json: %v\n%s", err, r.stdout)
	}
	e := entries[0]
	if e["key"] != key || e["kind"] != kind || e["state"] != "in-use" || e["holder_pid"] != float64(holder) {
		t.Fatalf("ls --json entry: %v", e)
	}
	for _, f := range []string{"cap_bytes", "apparent_bytes", "allocated_bytes", "last_used"} {
		if _, ok := e[f]; !ok {
			t.Errorf("ls --json lacks %s", f)
		}
	}
}

// TestBadInput: malformed keys and sizes and a symlinked root exit 2 with a
// clear message and create nothing.
func TestBadInput(t *testing.T) {
	requireSuite(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	cases := [][]string{
		{"create", "Bad-Key"}, {"create", "../escape"}, {"create", ""}, {"create", "k", "--size", "0"},
		{"create", "k", "--size", "-1"}, {"create", "k", "--size", "10XB"}, {"create", "k", "--kind", "nfs"},
		{"run", "k/../x", "--", "true"}, {"create", "k", "--no-such-flag"},
	}
	for _, args := range cases {
		r := dindstore(t, root, args...)
		if r.code != 2 || !strings.Contains(r.stderr, "dindstore:") {
			t.Errorf("%v: exit %d, stderr %q; want 2 and a message", args, r.code, r.stderr)
		}
		if _, err := os.Lstat(root); !os.IsNotExist(err) {
			t.Fatalf("%v created the root", args)
		}
	}
	// Bigger than the host filesystem can hold in one sparse file.
	r := dindstore(t, root, "create", "huge", "--kind", "loop", "--size", "900PiB")
	if r.code != 2 || !strings.Contains(r.stderr, "can hold") {
		t.Errorf("900 PiB: exit %d, %q", r.code, r.stderr)
	}
	if entries, _ := os.ReadDir(filepath.Join(root, "images")); len(entries) > 0 {
		t.Errorf("a refused size left %v", entries)
	}
	real := filepath.Join(dir, "real")
	must(t, os.Mkdir(real, 0o700))
	link := filepath.Join(dir, "link")
	must(t, os.Symlink(real, link))
	r = dindstore(t, link, "create", "k")
	if r.code != 2 || !strings.Contains(r.stderr, "symlink") {
		t.Errorf("symlinked root: exit %d, %q", r.code, r.stderr)
	}
	if entries, _ := os.ReadDir(real); len(entries) > 0 {
		t.Errorf("symlinked root: created %v in its target", entries)
	}
}

// TestRunCommandContract: {mount} and DINDSTORE_MOUNT reach the command, the
// lock descriptor does not, and the command's exit status comes back.
func TestRunCommandContract(t *testing.T) {
	requireSuite(t)
	root := filepath.Join(t.TempDir(), "root")
	t.Cleanup(func() { cleanupRoot(t, root) })
	script := `echo "arg={mount} env=$DINDSTORE_MOUNT"; ls -l /proc/$$/fd; exit 3`
	r := dindstore(t, root, "run", "it-contract", "--kind", "loop", "--size", "256MiB", "--", "sh", "-c", script)
	if r.code != 3 {
		t.Fatalf("exit %d, want the command's 3:\n%s%s", r.code, r.stdout, r.stderr)
	}
	mount := filepath.Join(root, "mounts", "it-contract")
	if !strings.Contains(r.stdout, "arg="+mount+" env="+mount) {
		t.Errorf("mount path not passed: %q", r.stdout)
	}
	if strings.Contains(r.stdout, ".lock") {
		t.Errorf("the lock descriptor leaked into the command:\n%s", r.stdout)
	}
	r = dindstore(t, root, "run", "it-contract", "--", "sh", "-c", "kill -TERM $$")
	if r.code != 128+15 {
		t.Errorf("command killed by SIGTERM: exit %d, want 143", r.code)
	}
	r = dindstore(t, root, "run", "it-contract", "--", "/no/such/command")
	if r.code != 127 || !strings.Contains(r.stderr, "/no/such/command") {
		t.Errorf("missing command: exit %d, %q", r.code, r.stderr)
	}
	assertNothingLeft(t, root)
}
