//go:build linux

package integration

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dindstore/dindstore/csi"
)

// A one-node Kubernetes for the CSI plugin's real-kubelet test: etcd,
// kube-apiserver and kubelet as `make k8s` builds them (k8s.io/kubernetes
// v1.34 from the Go module proxy), Debian's containerd as the CRI runtime,
// images imported (no registry). No scheduler and no controller manager:
// pods name their node. Everything lives in the test's temporary
// directory; the kubelet runs in a mount namespace of its own whose /var/log
// is a tmpfs (it links container logs into /var/log/containers, a path it
// does not let one change), slave to the host's so it sees the plugin's mounts.

// kubeNode is the node's name.
const kubeNode = "it-node"

// process is a long-running program the test started.
type process struct {
	name   string
	cmd    *exec.Cmd
	log    *syncBuffer
	exited chan struct{}
}

// startProcess starts a program, stopped (SIGTERM, then SIGKILL) at
// cleanup; its output is logged when the test failed.
func startProcess(t testing.TB, name string, argv ...string) *process {
	t.Helper()
	return startProcessEnv(t, nil, name, argv...)
}

// startProcessEnv is startProcess with env added to the test's environment.
func startProcessEnv(t testing.TB, env []string, name string, argv ...string) *process {
	t.Helper()
	p := &process{name: name, cmd: exec.Command(argv[0], argv[1:]...), log: &syncBuffer{}, exited: make(chan struct{})}
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	must(t, p.cmd.Start())
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.stop(20 * time.Second)
		if strings.Contains(p.log.String(), "WARNING: DATA RACE") { // built with DINDSTORE_TEST_RACE
			t.Errorf("%s: the race detector found a data race", name)
		}
		if t.Failed() {
			t.Logf("%s's log (last lines):\n%s", name, tail(p.log.String(), 40))
		}
	})
	return p
}

// stop ends the process: SIGTERM, and SIGKILL after grace.
func (p *process) stop(grace time.Duration) {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// kubeCluster is the running one-node cluster.
type kubeCluster struct {
	t        testing.TB
	dir, bin string
	api      string // https://127.0.0.1:PORT
	token    string
	ctrSock  string
	kubelet  *process
	client   *http.Client
}

// kubeBinaries is where `make k8s` put etcd, kube-apiserver and kubelet.
func kubeBinaries(t testing.TB) string {
	dir := os.Getenv("DINDSTORE_TEST_K8S")
	if dir == "" {
		dir = filepath.Join("..", ".cache", "k8s", "bin")
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kubelet"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			t.Skipf("skipping: %s not built (%v); `make k8s` builds it (make test does)", b, err)
		}
	}
	for _, tool := range []string{"containerd", "ctr", "unshare", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping: %s not found; `make deps` installs it", tool)
		}
	}
	abs, err := filepath.Abs(dir)
	must(t, err)
	return abs
}

// sharedMount makes dir a shared mount (a bind onto itself), as a node's
// kubelet directory is (systemd makes / shared; this host's / is private):
// the kubelet, in a mount namespace of its own, then sees the plugin's
// mounts come and go, instead of keeping private copies that hold the
// caches' loop devices. Undone at cleanup, after everything below it.
func sharedMount(t testing.TB, dir string) {
	if out, err := exec.Command("mount", "--bind", dir, dir).CombinedOutput(); err != nil {
		t.Fatalf("mount --bind %s: %v: %s", dir, err, out)
	}
	t.Cleanup(func() { // registered at once: undone even when the next step fails
		cleanupMountsBelow(t, dir)
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	if out, err := exec.Command("mount", "--make-rshared", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount --make-rshared %s: %v: %s", dir, err, out)
	}
}

// freePort finds a free port on 127.0.0.1.
func freePort(t testing.TB) int { return freePortOn(t, "127.0.0.1") }

// freePortOn finds a free port on an address of this host.
func freePortOn(t testing.TB, host string) int {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	must(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startKube starts etcd, kube-apiserver and containerd under dir; the
// kubelet is started by startKubelet, once the plugin runs.
func startKube(t testing.TB, dir string) *kubeCluster {
	t.Helper()
	c := startControlPlane(t, dir)
	c.startContainerd()
	return c
}

// startControlPlane starts etcd and kube-apiserver under dir.
func startControlPlane(t testing.TB, dir string) *kubeCluster {
	t.Helper()
	c := &kubeCluster{t: t, dir: dir, bin: kubeBinaries(t), token: "it-admin-token",
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}} // the apiserver's self-signed certificate, on loopback
	sharedMount(t, dir)
	etcd := c.startEtcd()
	c.startAPIServer(etcd)
	return c
}

func (c *kubeCluster) startEtcd() string {
	client, peer := freePort(c.t), freePort(c.t)
	cu, pu := fmt.Sprintf("http://127.0.0.1:%d", client), fmt.Sprintf("http://127.0.0.1:%d", peer)
	startProcess(c.t, "etcd", filepath.Join(c.bin, "etcd"), "--data-dir", filepath.Join(c.dir, "etcd"),
		"--name", "it", "--listen-client-urls", cu, "--advertise-client-urls", cu,
		"--listen-peer-urls", pu, "--initial-advertise-peer-urls", pu, "--initial-cluster", "it="+pu,
		"--unsafe-no-fsync", "--log-level", "warn")
	return cu
}

func (c *kubeCluster) startAPIServer(etcd string) {
	t, pki := c.t, filepath.Join(c.dir, "pki")
	must(t, os.MkdirAll(pki, 0o700))
	key := filepath.Join(pki, "sa.key")
	if out, err := exec.Command("openssl", "genrsa", "-out", key, "2048").CombinedOutput(); err != nil {
		t.Fatalf("openssl genrsa: %v\n%s", err, out)
	}
	tokens := filepath.Join(pki, "tokens.csv")
	must(t, os.WriteFile(tokens, []byte(c.token+`,it-admin,it-admin,"system:masters"`+"\n"), 0o600))
	port := freePort(t)
	c.api = fmt.Sprintf("https://127.0.0.1:%d", port)
	startProcess(t, "kube-apiserver", filepath.Join(c.bin, "kube-apiserver"),
		"--etcd-servers", etcd, "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
		"--secure-port", fmt.Sprint(port), "--cert-dir", pki, "--token-auth-file", tokens,
		"--authorization-mode", "AlwaysAllow", "--allow-privileged",
		"--service-account-issuer", "https://kubernetes.default.svc", "--service-account-key-file", key,
		"--service-account-signing-key-file", key, "--service-cluster-ip-range", "10.0.0.0/24",
		"--disable-admission-plugins", "ServiceAccount", "--endpoint-reconciler-type", "none",
		"--enable-priority-and-fairness=false")
	c.waitFor("the apiserver", 90*time.Second, func() bool {
		code, _ := c.call("GET", "/readyz", nil, nil)
		return code == 200
	})
}

// containerdConfig runs the CRI plugin with everything under dir.
const containerdConfig = `version = 2
root = "%[1]s/root"
state = "%[1]s/state"
[grpc]
  address = "%[1]s/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "%[2]s"
  # the test may lack CAP_SYS_RESOURCE (a VM's container): keep oom_score_adj
  # at or above containerd's own instead of failing every container
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "%[1]s/cni/bin"
    conf_dir = "%[1]s/cni/net.d"
`

// pauseImage is the sandbox image: busybox sleeping.
const pauseImage = "dindstore.test/pause:it"

func (c *kubeCluster) startContainerd() {
	t, dir := c.t, filepath.Join(c.dir, "containerd")
	must(t, os.MkdirAll(dir, 0o700))
	config := filepath.Join(dir, "config.toml")
	must(t, os.WriteFile(config, []byte(fmt.Sprintf(containerdConfig, dir, pauseImage)), 0o600))
	c.ctrSock = filepath.Join(dir, "containerd.sock")
	p := startProcess(t, "containerd", "containerd", "--config", config)
	t.Cleanup(func() { c.endContainers(); p.stop(20 * time.Second); killShims(c.ctrSock) })
	c.waitFor("containerd", 30*time.Second, func() bool { return c.ctr("version") == nil })
	c.importImage(busyboxTarTB(t), pauseImage, []string{"/bin/sleep", "2147483647"})
}

// ctr runs ctr against the test's containerd, in CRI's namespace.
func (c *kubeCluster) ctr(args ...string) error {
	out, err := exec.Command("ctr", append([]string{"--address", c.ctrSock, "--namespace", "k8s.io"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctr %v: %w: %s", args, err, out)
	}
	return nil
}

// importImage imports a rootfs tarball as a one-layer image ref.
func (c *kubeCluster) importImage(rootfs []byte, ref string, entrypoint []string) {
	archive, err := dockerArchive(rootfs, ref, entrypoint)
	must(c.t, err)
	path := filepath.Join(c.dir, "image.tar")
	must(c.t, os.WriteFile(path, archive, 0o600))
	defer os.Remove(path)
	must(c.t, c.ctr("images", "import", "--snapshotter", "overlayfs", path))
}

// dockerArchive wraps a rootfs tarball as `docker save` writes an image.
func dockerArchive(rootfs []byte, ref string, entrypoint []string) ([]byte, error) {
	sum := sha256.Sum256(rootfs)
	diffID := "sha256:" + hex.EncodeToString(sum[:])
	config, err := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Entrypoint": entrypoint,
			"Env": []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{diffID}}})
	if err != nil {
		return nil, err
	}
	csum := sha256.Sum256(config)
	configName := hex.EncodeToString(csum[:]) + ".json"
	layerName := hex.EncodeToString(sum[:]) + "/layer.tar"
	manifest, err := json.Marshal([]map[string]any{{"Config": configName, "RepoTags": []string{ref}, "Layers": []string{layerName}}})
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		data []byte
	}{{configName, config}, {layerName, rootfs}, {"manifest.json", manifest}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), tw.Close()
}

// endContainers kills and removes every container of the test's
// containerd (the safety net of a failed test: pods deleted through the
// API are gone already).
func (c *kubeCluster) endContainers() {
	out, _ := exec.Command("ctr", "--address", c.ctrSock, "--namespace", "k8s.io", "tasks", "ls", "-q").Output()
	for _, id := range strings.Fields(string(out)) {
		_ = c.ctr("tasks", "kill", "--all", "--signal", "SIGKILL", id)
	}
	for _, id := range strings.Fields(string(out)) {
		for i := 0; i < 50 && c.ctr("tasks", "delete", id) != nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// killShims kills the runc shims the test's containerd started (they
// outlive it), found by the address on their command line.
func killShims(sock string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte("containerd-shim")) || !bytes.Contains(b, []byte(sock)) {
			continue
		}
		var pid int
		if _, err := fmt.Sscanf(p, "/proc/%d/cmdline", &pid); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// kubeletConfig is the kubelet's configuration: no authentication on its
// own port (loopback), cgroupfs, nothing evicted, every path in dir.
const kubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: %[2]d
readOnlyPort: 0
healthzPort: 0
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
containerRuntimeEndpoint: unix://%[3]s
podLogsDir: %[1]s/pod-logs
volumePluginDir: %[1]s/volume-plugins
evictionHard: {memory.available: "0%%", nodefs.available: "0%%", imagefs.available: "0%%", nodefs.inodesFree: "0%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
localStorageCapacityIsolation: false
resolvConf: ""
syncFrequency: 5s
fileCheckFrequency: 5s
nodeStatusUpdateFrequency: 5s
`

// kubeletDir is the kubelet's root directory.
func (c *kubeCluster) kubeletDir() string { return filepath.Join(c.dir, "kubelet") }

// startKubelet starts the kubelet (again, after stopKubelet).
func (c *kubeCluster) startKubelet() {
	t, dir := c.t, c.kubeletDir()
	must(t, os.MkdirAll(dir, 0o700))
	config, kubeconfig := filepath.Join(c.dir, "kubelet.yaml"), filepath.Join(c.dir, "kubeconfig")
	must(t, os.WriteFile(config, []byte(fmt.Sprintf(kubeletConfig, c.dir, freePort(t), c.ctrSock)), 0o600))
	must(t, os.WriteFile(kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: it, cluster: {server: "%s", insecure-skip-tls-verify: true}}]
users: [{name: it, user: {token: "%s"}}]
contexts: [{name: it, context: {cluster: it, user: it}}]
current-context: it
`, c.api, c.token)), 0o600))
	c.kubelet = startProcess(t, "kubelet", "env", "PROPAGATION=slave", "sh", privateNS, c.dir,
		"sh", "-c", `mount -t tmpfs tmpfs /var/log && exec "$@"`, "sh",
		filepath.Join(c.bin, "kubelet"), "--config", config, "--kubeconfig", kubeconfig,
		"--root-dir", dir, "--hostname-override", kubeNode, "--node-ip", hostIP(t), "--v", "2")
	c.waitFor("the kubelet's namespace to hold only the test's mounts", 10*time.Second, func() bool {
		return pinsOnly(c.kubelet.cmd.Process.Pid, c.dir)
	})
	c.waitFor("the node to register", 90*time.Second, func() bool {
		code, _ := c.call("GET", "/api/v1/nodes/"+kubeNode, nil, nil)
		return code == 200
	})
}

// hostIP is an IPv4 address of this host that is not loopback (the
// kubelet refuses a loopback node IP).
func hostIP(t testing.TB) string {
	addrs, err := net.InterfaceAddrs()
	must(t, err)
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			return n.IP.String()
		}
	}
	t.Skip("skipping: the host has no IPv4 address but loopback, which the kubelet refuses as its node IP")
	return ""
}

// pinsOnly says whether the mount namespace of pid holds, of the temporary
// directory's mounts, only those below keep: none of other tests' (see
// testdata/private-ns.sh).
func pinsOnly(pid int, keep string) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		return false
	}
	tmp := os.TempDir() + "/"
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], tmp) &&
			f[4] != keep && !strings.HasPrefix(f[4], keep+"/") {
			return false
		}
	}
	return true
}

// waitRegistered waits for the kubelet to list the plugin on its CSINode.
func waitRegistered(c *kubeCluster) {
	c.t.Helper()
	c.waitFor("the kubelet to register the plugin", 90*time.Second, func() bool {
		var node struct {
			Spec struct {
				Drivers []struct{ Name string } `json:"drivers"`
			} `json:"spec"`
		}
		code, _ := c.call("GET", "/apis/storage.k8s.io/v1/csinodes/"+kubeNode, nil, &node)
		return code == 200 && len(node.Spec.Drivers) == 1 && node.Spec.Drivers[0].Name == csi.DefaultDriverName
	})
}

// stopKubelet stops the kubelet (its pods go on running).
func (c *kubeCluster) stopKubelet() { c.kubelet.stop(30 * time.Second) }

// call makes an API request with JSON in and out; it returns the status.
func (c *kubeCluster) call(method, path string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, c.api+path, body)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	if method == "PATCH" {
		req.Header.Set("Content-Type", "application/merge-patch+json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && out != nil && resp.StatusCode < 300 {
		err = json.Unmarshal(b, out)
	}
	if err == nil && resp.StatusCode >= 300 && resp.StatusCode != 404 {
		err = fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	return resp.StatusCode, err
}

// callPatch merge-patches an object.
func (c *kubeCluster) callPatch(path string, patch any) (int, error) {
	return c.call("PATCH", path, patch, nil)
}

// create posts an object, failing the test when the API refuses it.
func (c *kubeCluster) create(path string, obj any) {
	c.t.Helper()
	if _, err := c.call("POST", path, obj, nil); err != nil {
		c.t.Fatal(err)
	}
}

// waitFor polls cond every 250 ms until it holds or timeout passes.
func (c *kubeCluster) waitFor(what string, timeout time.Duration, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("waited %s for %s", timeout, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// podState is what the test reads of a pod.
type podState struct {
	Metadata struct {
		UID string `json:"uid"`
	} `json:"metadata"`
	Status struct {
		Phase             string `json:"phase"`
		ContainerStatuses []struct {
			Ready bool `json:"ready"`
		} `json:"containerStatuses"`
	} `json:"status"`
}

// pod reads a pod of the default namespace; found is false once it is gone.
func (c *kubeCluster) pod(name string) (p podState, found bool) { return c.podIn("default", name) }

// podIn reads a pod of a namespace.
func (c *kubeCluster) podIn(namespace, name string) (p podState, found bool) {
	code, err := c.call("GET", "/api/v1/namespaces/"+namespace+"/pods/"+name, nil, &p)
	if err != nil {
		c.t.Fatal(err)
	}
	return p, code == 200
}

// podEvents lists the messages of a pod's events.
func (c *kubeCluster) podEvents(name string) []string {
	var list struct {
		Items []struct {
			Reason  string `json:"reason"`
			Message string `json:"message"`
		} `json:"items"`
	}
	if _, err := c.call("GET", "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3D"+name, nil, &list); err != nil {
		c.t.Fatal(err)
	}
	var msgs []string
	for _, e := range list.Items {
		msgs = append(msgs, e.Reason+": "+e.Message)
	}
	return msgs
}

// deletePod deletes a pod and waits until the kubelet has torn it down
// (it removes the object once its volumes are unmounted).
func (c *kubeCluster) deletePod(name, namespace string) {
	c.t.Helper()
	if _, err := c.call("DELETE", "/api/v1/namespaces/"+namespace+"/pods/"+name, nil, nil); err != nil {
		c.t.Fatal(err)
	}
	c.waitFor("pod "+name+" to be gone", 2*time.Minute, func() bool { _, found := c.podIn(namespace, name); return !found })
}
