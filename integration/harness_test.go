//go:build linux

package integration

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dindstore/dindstore/cache"
	"github.com/dindstore/dindstore/loopdev"
	"github.com/dindstore/dindstore/volumes"
)

// binary is the dindstore built by TestMain, faultBinary the same built
// with -tags faults; skipReason is set when the suite cannot run here.
var binary, faultBinary, skipReason string

// provisionerBinary is cmd/dindstore-provisioner, built by TestMain.
var provisionerBinary string

// privateNS is testdata/private-ns.sh: `sh privateNS KEEP CMD...` runs CMD
// in a mount namespace of its own that holds, of the temporary directory's
// mounts, only KEEP's (never those of tests running at the same time).
var privateNS string

func TestMain(m *testing.M) {
	os.Exit(setup(m))
}

// modernEngine is the directory of a current engine (dockerd 29 era,
// containerd 2, runc 1.5) built by `make engine`, "" when there is none;
// inModernLane says that this run puts it first on PATH (the second lane
// of `make test`).
var modernEngine, inModernLane = findModernEngine()

func findModernEngine() (string, bool) {
	if dir := os.Getenv("DINDSTORE_TEST_ENGINE"); dir != "" {
		os.Setenv("PATH", dir+":"+os.Getenv("PATH"))
		return dir, true
	}
	dir := os.Getenv("DINDSTORE_TEST_ENGINE_DIR")
	if _, err := os.Stat(filepath.Join(dir, "dockerd")); dir == "" || err != nil {
		return "", false
	}
	return dir, false
}

func setup(m *testing.M) int {
	switch {
	case os.Geteuid() != 0:
		skipReason = "needs root (loop devices, mounts, dockerd); run `sudo make test`"
	default:
		for _, tool := range []string{"dockerd", "docker", "containerd", "runc", "mkfs.ext4", "busybox"} {
			if _, err := exec.LookPath(tool); err != nil {
				skipReason = tool + " not found; `make deps` installs it"
			}
		}
	}
	dir, err := os.MkdirTemp("", "dindstore-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	defer os.Remove(dindTar)
	defer os.Remove(dindRootlessTar)
	defer os.Remove(currentDindTar)
	defer os.Remove(currentDindRootlessTar)
	if privateNS, err = filepath.Abs("testdata/private-ns.sh"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	os.Setenv("DINDSTORE_TEST_PRIVATE_NS", privateNS) // for the scripts tests run through dindstore
	binary, faultBinary = filepath.Join(dir, "dindstore"), filepath.Join(dir, "dindstore-faults")
	provisionerBinary = filepath.Join(dir, "dindstore-provisioner")
	for _, b := range [][]string{{"-o", binary, "../cmd/dindstore"}, {"-tags", "faults", "-o", faultBinary, "../cmd/dindstore"},
		{"-o", provisionerBinary, "../cmd/dindstore-provisioner"}} {
		args := append([]string{"build"}, b...)
		cgo := "CGO_ENABLED=0" // as `make build`: static
		if os.Getenv("DINDSTORE_TEST_RACE") != "" {
			args, cgo = append([]string{"build", "-race"}, args[1:]...), "CGO_ENABLED=1" // the race detector in every process the tests start
		}
		cmd := exec.Command("go", args...)
		cmd.Env = append(os.Environ(), cgo)
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go %v: %v\n%s", args, err, out)
			return 1
		}
	}
	return m.Run()
}

func requireSuite(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip("skipping: " + skipReason)
	}
}

// result is what a finished dindstore command did.
type result struct {
	code           int
	stdout, stderr string
}

// dindstore runs the CLI to completion.
func dindstore(t *testing.T, root string, args ...string) result {
	t.Helper()
	return dindstoreTB(t, root, args...)
}

// dindstoreTB is dindstore for tests and benchmarks.
func dindstoreTB(t testing.TB, root string, args ...string) result {
	t.Helper()
	return runBinary(t, binary, nil, root, args...)
}

// runBinary runs a dindstore binary to completion with extra environment.
// A process killed by a signal has code -1.
func runBinary(t testing.TB, bin string, env []string, root string, args ...string) result {
	t.Helper()
	return runBinaryStdin(t, bin, env, nil, root, args...)
}

// runBinaryStdin is runBinary with stdin.
func runBinaryStdin(t testing.TB, bin string, env []string, stdin []byte, root string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--root", root}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	// A killed dindstore leaves its command's tree holding the pipes until
	// recover ends it: do not wait for them to close.
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Errorf("dindstore %v: %v", args, err) // Errorf: may run off the test's goroutine
	}
	return r
}

// daemon is a dockerd started through `dindstore run`.
type daemon struct {
	t      *testing.T
	cmd    *exec.Cmd
	sock   string
	log    string
	exited chan struct{}
	err    error
}

// startDaemon runs `dindstore run KEY [flags] -- dockerd ...` in the
// background and waits until the daemon answers. The cleanup stops it even
// when the test fails, and tears down what a killed run left mounted.
func startDaemon(t *testing.T, root, key string, flags []string, dockerdFlags ...string) *daemon {
	t.Helper()
	dir := t.TempDir()
	d := &daemon{t: t, sock: filepath.Join(dir, "d.sock"), log: filepath.Join(dir, "run.log"), exited: make(chan struct{})}
	args := append([]string{"--root", root, "run", key}, flags...)
	args = append(args, "--", "dockerd", "--data-root", "{mount}",
		"--exec-root", filepath.Join(dir, "exec"), "--pidfile", filepath.Join(dir, "d.pid"),
		"-H", "unix://"+d.sock, "--bridge=none", "--iptables=false", "--ip-masq=false",
		"--containerd-namespace", "dindstore-it-"+key, "--containerd-plugins-namespace", "dindstore-itp-"+key)
	args = append(args, dockerdFlags...)
	logf, err := os.Create(d.log)
	if err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(binary, args...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.err = d.cmd.Wait(); logf.Close(); close(d.exited) }()
	t.Cleanup(func() {
		d.stop()
		cleanupRoot(t, root)
		// A daemon killed with its holder leaves its containers' network
		// namespaces bind-mounted below its exec root.
		if err := volumes.Unmount(filepath.Join(dir, "exec")); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	d.waitReady()
	return d
}

func (d *daemon) waitReady() {
	d.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-d.exited:
			d.t.Fatalf("dindstore run exited early (%v):\n%s", d.err, d.logs())
		default:
		}
		if _, err := d.docker("version"); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	d.t.Fatalf("dockerd did not answer within 90s:\n%s", d.logs())
}

func (d *daemon) logs() string {
	b, _ := os.ReadFile(d.log)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

// docker runs the docker CLI against this daemon.
func (d *daemon) docker(args ...string) (string, error) {
	return dockerStdin(d.sock, nil, args...)
}

func dockerStdin(sock string, stdin []byte, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", append([]string{"-H", "unix://" + sock}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// stop sends SIGTERM to dindstore (which passes it to dockerd) and waits
// for it to unmount and exit; SIGKILL after 60s. It returns the exit code.
func (d *daemon) stop() int {
	select {
	case <-d.exited:
	default:
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(60 * time.Second):
			d.t.Errorf("dindstore run did not stop within 60s after SIGTERM:\n%s", d.logs())
			_ = d.cmd.Process.Kill()
			<-d.exited
		}
	}
	return d.cmd.ProcessState.ExitCode()
}

// cleanupRoot is the safety net for a failed test: unmount everything below
// root and detach loop devices backed by its images, those removed while
// still attached included.
func cleanupRoot(t testing.TB, root string) {
	mounts, _ := filepath.Glob(filepath.Join(root, "mounts", "*"))
	for _, m := range mounts {
		if err := volumes.Unmount(m); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
	images, _ := filepath.Glob(filepath.Join(root, "images", "*"))
	for _, img := range images {
		devs, _ := loopdev.FindByFile(img)
		for _, dev := range devs {
			_ = loopdev.DetachIfBacked(dev.Path, dev.BackingDev, dev.BackingInode)
		}
	}
	devs, _ := loopdev.List()
	for _, d := range devs {
		if strings.HasPrefix(d.BackingFile, root+"/") { // the kernel's path, " (deleted)" once removed
			_ = loopdev.DetachIfBacked(d.Path, d.BackingDev, d.BackingInode)
		}
	}
}

// assertNothingLeft checks that no mount below root and no loop device
// backed by one of its images remains.
func assertNothingLeft(t *testing.T, root string) {
	t.Helper()
	raw, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), " "+root+"/") {
		t.Errorf("mounts below %s left behind", root)
	}
	devs, err := loopdev.List()
	if err != nil {
		t.Fatal(err)
	}
	images, _ := filepath.Glob(filepath.Join(root, "images", "*.img"))
	for _, img := range images {
		found, _ := loopdev.FindByFile(img)
		if len(found) > 0 {
			t.Errorf("loop device %s still backed by %s", found[0].Path, img)
		}
	}
	for _, d := range devs {
		if strings.HasPrefix(d.Tag, cache.TagPrefix+"it-") {
			t.Errorf("loop device %s tagged %s left behind", d.Path, d.Tag)
		}
	}
}

// busyboxTar builds a rootfs tarball around the host's static busybox.
func busyboxTar(t *testing.T) []byte {
	t.Helper()
	return busyboxTarTB(t)
}

// busyboxTarTB is busyboxTar for tests and benchmarks.
func busyboxTarTB(t testing.TB) []byte {
	t.Helper()
	path, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("skipping: busybox not found")
	}
	bin, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"bin/", "tmp/", "etc/"} {
		must(t, tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755}))
	}
	must(t, tw.WriteHeader(&tar.Header{Name: "bin/busybox", Mode: 0o755, Size: int64(len(bin))}))
	_, err = tw.Write(bin)
	must(t, err)
	for _, app := range []string{"sh", "echo", "cat", "ls", "sleep", "true"} {
		must(t, tw.WriteHeader(&tar.Header{Name: "bin/" + app, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777}))
	}
	must(t, tw.Close())
	return buf.Bytes()
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
