//go:build linux

package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// testRegistry is Debian's docker-registry (distribution) on 127.0.0.1,
// plain HTTP or TLS with a CA made by the test, optionally behind basic
// auth, with its storage in the test's temporary directory.
type testRegistry struct {
	addr, data string
	caFile     string // "" for plain HTTP
	user, pass string // "" without auth
}

// registryOptions says how to serve a testRegistry.
type registryOptions struct {
	tls, auth bool
}

// newTestRegistry starts a registry; the cleanup stops it.
func newTestRegistry(t testing.TB, o registryOptions) *testRegistry {
	t.Helper()
	if _, err := exec.LookPath("docker-registry"); err != nil {
		t.Skip("skipping: docker-registry not found; `make deps` installs it")
	}
	dir := t.TempDir()
	r := &testRegistry{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(freePortOn(t, "127.0.0.1"))),
		data: filepath.Join(dir, "data")}
	cfg := fmt.Sprintf("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", r.data, r.addr)
	if o.tls {
		cert, key := r.makeCerts(t, dir)
		cfg += fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", cert, key)
	}
	if o.auth {
		r.user, r.pass = "fleet", "s3cret-"+strconv.Itoa(os.Getpid())
		hash, err := bcrypt.GenerateFromPassword([]byte(r.pass), bcrypt.MinCost)
		must(t, err)
		pw := filepath.Join(dir, "htpasswd")
		must(t, os.WriteFile(pw, []byte(r.user+":"+string(hash)+"\n"), 0o600))
		cfg += fmt.Sprintf("auth:\n  htpasswd:\n    realm: dindstore-test\n    path: %s\n", pw)
	}
	path := filepath.Join(dir, "config.yml")
	must(t, os.WriteFile(path, []byte(cfg), 0o600))
	cmd := exec.Command("docker-registry", "serve", path)
	logf, err := os.Create(filepath.Join(dir, "log"))
	must(t, err)
	cmd.Stdout, cmd.Stderr = logf, logf
	must(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); logf.Close() })
	r.waitReady(t)
	return r
}

// url is the registry's base URL.
func (r *testRegistry) url() string {
	if r.caFile != "" {
		return "https://" + r.addr
	}
	return "http://" + r.addr
}

// flags are push's and pull's flags for this registry.
func (r *testRegistry) flags() []string {
	if r.caFile != "" {
		return []string{"--ca-file", r.caFile}
	}
	return []string{"--plain-http"}
}

// client is an HTTP client that trusts the registry.
func (r *testRegistry) client(t testing.TB) *http.Client {
	t.Helper()
	if r.caFile == "" {
		return http.DefaultClient
	}
	pem, err := os.ReadFile(r.caFile)
	must(t, err)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

func (r *testRegistry) waitReady(t testing.TB) {
	t.Helper()
	hc := r.client(t)
	for i := 0; i < 100; i++ {
		if resp, err := hc.Get(r.url() + "/v2/"); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("docker-registry did not answer")
}

// dockerConfig writes a Docker config directory holding user and pass for
// this registry and returns the environment that points at it.
func (r *testRegistry) dockerConfig(t testing.TB, user, pass string) []string {
	t.Helper()
	dir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	b, err := json.Marshal(map[string]any{"auths": map[string]any{r.addr: map[string]string{"auth": auth}}})
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600))
	return []string{"DOCKER_CONFIG=" + dir}
}

// storageBytes is what the registry's storage holds (file sizes).
func (r *testRegistry) storageBytes(t testing.TB) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(r.data, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			n += fi.Size()
		}
		return err
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return n
}

// blobPath is where the registry keeps the blob of digest (sha256:hex).
func (r *testRegistry) blobPath(digest string) string {
	hex := strings.TrimPrefix(digest, "sha256:")
	return filepath.Join(r.data, "docker", "registry", "v2", "blobs", "sha256", hex[:2], hex, "data")
}

// makeCerts makes a CA (written to r.caFile) and a certificate it signed
// for 127.0.0.1, and returns the certificate's and key's files.
func (r *testRegistry) makeCerts(t testing.TB, dir string) (certFile, keyFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "dindstore test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	must(t, err)
	caCert, err := x509.ParseCertificate(caDER)
	must(t, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	must(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	must(t, err)
	r.caFile = filepath.Join(dir, "ca.pem")
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePEM(t, r.caFile, "CERTIFICATE", caDER)
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
	return certFile, keyFile
}

func writePEM(t testing.TB, path, kind string, der []byte) {
	t.Helper()
	must(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600))
}

// failingFront is a plain-HTTP front to a plain-HTTP registry that serves
// the first n blob downloads and then stops answering: it hangs up on
// every request, as a registry that goes down in the middle of a pull.
func failingFront(t testing.TB, reg *testRegistry, n int32) string {
	t.Helper()
	target, err := url.Parse(reg.url())
	must(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var left atomic.Int32
	left.Store(n)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.Contains(req.URL.Path, "/blobs/") && left.Add(-1) < 0 {
			hangUp(w)
			return
		}
		proxy.ServeHTTP(w, req)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// hangUp closes the connection without an answer.
func hangUp(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

// manifestLayers lists the chunk digests of the artifact ref (repo:tag).
func (r *testRegistry) manifestLayers(t testing.TB, repo, tag string) []string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, r.url()+"/v2/"+repo+"/manifests/"+tag, nil)
	must(t, err)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	if r.user != "" {
		req.SetBasicAuth(r.user, r.pass)
	}
	resp, err := r.client(t).Do(req)
	must(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m struct {
		Layers []struct{ Digest string }
	}
	if err := json.Unmarshal(b, &m); err != nil || resp.StatusCode != 200 {
		t.Fatalf("manifest of %s:%s: %s %v %s", repo, tag, resp.Status, err, b)
	}
	var out []string
	for _, l := range m.Layers {
		out = append(out, l.Digest)
	}
	return out
}
