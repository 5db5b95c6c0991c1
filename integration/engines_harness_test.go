//go:build linux

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// dindEngine is a dind image the launch-based tests run on.
type dindEngine struct {
	// name names the subtest: "dockerd-20.10" (Debian's) or "current"
	// (make engine's: dockerd 29 era, containerd 2).
	name, image string
	// current says that its engine has the containerd image store as the
	// default of a fresh data root.
	current bool
}

// currentDindImage is the dind image of the current engine.
const currentDindImage = "dindstore-test/dind:current"

// currentDindRootlessImage is the rootless dind image of the current
// engine (its dockerd-rootless.sh, rootlesskit 2).
const currentDindRootlessImage = "dindstore-test/dind-rootless:current"

var (
	currentDindTar          = filepath.Join(os.TempDir(), fmt.Sprintf("dindstore-dind-current-%d.tar", os.Getpid()))
	currentDindRootlessTar  = filepath.Join(os.TempDir(), fmt.Sprintf("dindstore-dind-rootless-current-%d.tar", os.Getpid()))
	buildCurrentTar         sync.Once
	buildCurrentRootlessTar sync.Once
	currentTarErr           error
	currentRootlessTarErr   error
)

// dindEngines imports the dind images of both engines into the outer
// daemon: Debian's dockerd 20.10 always, the current engine when `make
// engine` built it (DINDSTORE_TEST_ENGINE_DIR; make test sets it).
func dindEngines(t *testing.T, o *outer) []dindEngine {
	t.Helper()
	buildDindImage(t, o)
	engines := []dindEngine{{name: "dockerd-20.10", image: dindImage}}
	if modernEngine == "" {
		t.Logf("the current engine is not built (make engine): launch tests run on dockerd 20.10 only")
		return engines
	}
	importDindTar(t, o, currentTar(t), currentDindImage)
	return append(engines, dindEngine{name: "current", image: currentDindImage, current: true})
}

// forEachEngine runs test once per dind engine, as subtests.
func forEachEngine(t *testing.T, o *outer, test func(t *testing.T, e dindEngine)) {
	t.Helper()
	for _, e := range dindEngines(t, o) {
		t.Run(e.name, func(t *testing.T) { test(t, e) })
	}
}

// forEachEngineRoot runs test on each dind engine, each with a root of its
// own (cleaned up after it), on one outer daemon.
func forEachEngineRoot(t *testing.T, test func(t *testing.T, o *outer, root string, e dindEngine)) {
	requireSuite(t)
	o := startOuter(t, true)
	forEachEngine(t, o, func(t *testing.T, e dindEngine) {
		root := filepath.Join(t.TempDir(), "root")
		t.Cleanup(func() { cleanupRoot(t, root) })
		test(t, o, root, e)
	})
}

// importDindTar imports a dind rootfs tarball as image, shaped like
// docker:dind (its entrypoint under tini, dockerd by default).
func importDindTar(t testing.TB, o *outer, tarPath, image string) {
	t.Helper()
	tar, err := os.ReadFile(tarPath)
	must(t, err)
	if _, err := dockerStdin(o.sock, tar, "import",
		"--change", `ENTRYPOINT ["/usr/bin/docker-init","--","/usr/local/bin/dind"]`,
		"--change", `CMD ["dockerd","--host=unix:///var/run/docker.sock"]`,
		"--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"-", image); err != nil {
		t.Fatal(err)
	}
}

// dindRootlessEngines imports the rootless dind images of both engines,
// as dindEngines does the rootful ones.
func dindRootlessEngines(t *testing.T, o *outer) []dindEngine {
	t.Helper()
	buildDindRootlessImage(t, o)
	engines := []dindEngine{{name: "dockerd-20.10", image: dindRootlessImage}}
	if modernEngine == "" {
		t.Logf("the current engine is not built (make engine): rootless tests run on dockerd 20.10 only")
		return engines
	}
	tar := cachedDindTar("dind-rootless-current.tar")
	if tar == "" {
		buildCurrentRootlessTar.Do(func() {
			currentRootlessTarErr = buildRootfsTarEnv("testdata/dind-rootless-rootfs.sh", currentDindRootlessTar,
				"ENGINE_DIR="+modernEngine)
		})
		must(t, currentRootlessTarErr)
		tar = currentDindRootlessTar
	}
	importRootlessTar(t, o, tar, currentDindRootlessImage)
	return append(engines, dindEngine{name: "current", image: currentDindRootlessImage, current: true})
}

// cachedDindTar is the tarball name that `make dind-images` built into
// DINDSTORE_TEST_DIND_DIR (make test sets it), "" when there is none.
func cachedDindTar(name string) string {
	dir := os.Getenv("DINDSTORE_TEST_DIND_DIR")
	if dir == "" {
		return ""
	}
	if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Size() == 0 {
		return ""
	}
	return filepath.Join(dir, name)
}

// currentTar is the rootfs tarball of the current engine's dind image:
// make dind-images' when there is one, else built once per test binary.
func currentTar(t testing.TB) string {
	t.Helper()
	if tar := cachedDindTar("dind-current.tar"); tar != "" {
		return tar
	}
	buildCurrentTar.Do(func() {
		currentTarErr = buildRootfsTarEnv("testdata/dind-rootfs.sh", currentDindTar, "ENGINE_DIR="+modernEngine)
	})
	must(t, currentTarErr)
	return currentDindTar
}
