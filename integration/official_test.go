//go:build linux

package integration

import (
	"strings"
	"testing"
	"time"
)

// docker-library's own tests of the docker:dind image — `docker-dind` and
// `docker-registry-push-pull` in official-images/test — re-implemented
// against `dindstore launch` with DOCKER_TLS_CERTDIR=/certs: the dind
// container runs on a loop cache, and a client container that shares its
// client certificates talks to it over TLS, as the official test's does.

// officialDind is a dind launched as the official test starts one, and
// the way its client containers reach it.
type officialDind struct {
	t       *testing.T
	o       *outer
	image   string
	network string
	certs   string
	ip      string
}

// client runs `docker ARGS` in a client container beside the dind (stdin,
// when set, is passed on) and returns its output.
func (d *officialDind) client(stdin []byte, args ...string) (string, error) {
	run := []string{"run", "--rm", "-i", "--network", d.network, "--add-host", "docker:" + d.ip,
		"-e", "DOCKER_HOST=tcp://docker:2376", "-e", "DOCKER_TLS_VERIFY=1", "-e", "DOCKER_CERT_PATH=/certs/client",
		"-v", d.certs + "/client:/certs/client:ro", "--entrypoint", "docker", d.image}
	return dockerStdin(d.o.sock, stdin, append(run, args...)...)
}

// mustClient is client that fails the test on error.
func (d *officialDind) mustClient(stdin []byte, args ...string) string {
	d.t.Helper()
	out, err := d.client(stdin, args...)
	if err != nil {
		d.t.Fatalf("docker %v: %v: %s", args, err, out)
	}
	return strings.TrimSpace(out)
}

// TestOfficialDindChecks: what docker-dind asserts — the client answers
// `docker version` within 30 tries; no images at first; busybox, loaded,
// runs --rm three times; create, start, stop, rm, each state checked; no
// container left — and docker-registry-push-pull: an image pushed to a
// local registry, removed, pulled back and run. Then release leaves
// nothing.
func TestOfficialDindChecks(t *testing.T) { forEachEngineRoot(t, officialChecks) }

func officialChecks(t *testing.T, o *outer, root string, e dindEngine) {
	d := &officialDind{t: t, o: o, image: e.image, network: "dindstore-official-" + e.name, certs: t.TempDir()}
	if out, err := o.docker("network", "create", d.network); err != nil {
		t.Fatalf("network: %v: %s", err, out)
	}
	t.Cleanup(func() { _, _ = o.docker("network", "rm", d.network) })
	gw, err := o.docker("network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}", d.network)
	must(t, err)
	reg := startRegistryOn(t, strings.TrimSpace(gw))

	name := "dind-official-" + e.name
	r := runBinary(t, binary, o.env(), root, "launch", "off", "--kind", "loop", "--size", "4GiB",
		"--image", e.image, "--name", name, "--network", d.network, "--network-alias", "docker",
		"--env", "DOCKER_TLS_CERTDIR=/certs", "--volume", d.certs+":/certs", "--detach", "--",
		"--bridge=none", "--iptables=false", "--ip-masq=false", "--insecure-registry", reg)
	if r.code != 0 {
		t.Fatalf("launch: exit %d: %s", r.code, r.stderr)
	}
	t.Cleanup(func() { runBinary(t, binary, o.env(), root, "release", "off") })
	d.ip = strings.TrimSpace(mustDocker(t, o, "inspect", "-f",
		"{{(index .NetworkSettings.Networks \""+d.network+"\").IPAddress}}", name))

	d.waitVersion()
	if out := d.mustClient(nil, "images", "-q"); out != "" {
		t.Fatalf("images at first: %q", out)
	}
	d.mustClient(busyboxTar(t), "import", "-", "busybox:latest")
	for range 3 {
		d.mustClient(nil, "run", "--rm", "--network", "none", "busybox", "true")
	}
	d.lifecycle()
	d.pushPull(reg)
	if out := d.mustClient(nil, "ps", "-aq"); out != "" {
		t.Fatalf("containers left in the inner daemon: %q", out)
	}

	if r := runBinary(t, binary, o.env(), root, "release", "off"); r.code != 0 {
		t.Fatalf("release: exit %d: %s", r.code, r.stderr)
	}
	assertNothingLeft(t, root)
	if out, _ := o.docker("ps", "-aq"); strings.TrimSpace(out) != "" {
		t.Fatalf("containers left on the host: %q", out)
	}
}

// waitVersion: the client answers `docker version` within 30 tries, a
// second apart, as the official test allows.
func (d *officialDind) waitVersion() {
	var out string
	var err error
	for range 30 {
		if out, err = d.client(nil, "version", "--format", "{{.Server.Version}}"); err == nil {
			d.t.Logf("inner daemon %s answers over TLS", strings.TrimSpace(out))
			return
		}
		time.Sleep(time.Second)
	}
	d.t.Fatalf("docker version did not answer within 30 tries: %v: %s", err, out)
}

// lifecycle: create, start, stop and rm a container, checking its state
// after each step.
func (d *officialDind) lifecycle() {
	state := func(want string) {
		if got := d.mustClient(nil, "inspect", "-f", "{{.State.Status}}", "lifecycle"); got != want {
			d.t.Fatalf("container state %q, want %q", got, want)
		}
	}
	d.mustClient(nil, "create", "--name", "lifecycle", "--network", "none", "busybox", "sleep", "1000")
	state("created")
	d.mustClient(nil, "start", "lifecycle")
	state("running")
	d.mustClient(nil, "stop", "-t", "1", "lifecycle")
	state("exited")
	d.mustClient(nil, "rm", "lifecycle")
	if _, err := d.client(nil, "inspect", "lifecycle"); err == nil {
		d.t.Fatal("the container is still there after rm")
	}
}

// pushPull: push to the local registry, remove, pull back, run.
func (d *officialDind) pushPull(reg string) {
	ref := reg + "/busybox:pushed"
	d.mustClient(nil, "tag", "busybox", ref)
	d.mustClient(nil, "push", ref)
	d.mustClient(nil, "rmi", ref, "busybox")
	if out := d.mustClient(nil, "images", "-q"); out != "" {
		d.t.Fatalf("images after rmi: %q", out)
	}
	d.mustClient(nil, "pull", ref)
	d.mustClient(nil, "run", "--rm", "--network", "none", ref, "true")
}

func mustDocker(t *testing.T, o *outer, args ...string) string {
	t.Helper()
	out, err := o.docker(args...)
	if err != nil {
		t.Fatalf("docker %v: %v: %s", args, err, out)
	}
	return out
}
