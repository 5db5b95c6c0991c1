package dockerd

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Image stores an inner daemon can keep its images in.
const (
	// StoreGraphDriver is dockerd's own graph driver (overlay2, vfs): all
	// Docker engines, and Docker 29 with the containerd store turned off.
	StoreGraphDriver = "graphdriver"
	// StoreSnapshotter is the containerd image store (snapshotters
	// overlayfs, native): the default of fresh Docker 29 installs. Its data
	// lives under <data-root>/containerd when dockerd manages containerd.
	StoreSnapshotter = "snapshotter"
)

// ErrStoreMismatch means a daemon would open a cache with the other image
// store than the one it was filled with: it would find it empty.
var ErrStoreMismatch = errors.New("image store mismatch")

// featureFlag is dockerd's switch between the stores (Docker 24 and later).
const featureFlag = "containerd-snapshotter"

// Engine is what a dockerd binary can do, found without starting it.
type Engine struct {
	// Features is true for engines that know --feature (23 and later), and
	// so can be told which image store to use.
	Features bool
	// Major is the engine's major version, 0 when it does not say (an
	// engine built from source).
	Major int
}

// snapshotterDefault is the first major version whose fresh data root
// gets the containerd image store.
const snapshotterDefault = 29

// DefaultStore is the store the engine picks on its own for a fresh data
// root: the containerd store from Docker 29 on, the graph driver before.
// An engine that does not say its version but knows --feature was built
// from a current source tree, and is taken as current.
func (e Engine) DefaultStore() string {
	if e.Major >= snapshotterDefault || (e.Major == 0 && e.Features) {
		return StoreSnapshotter
	}
	return StoreGraphDriver
}

// ParseMajor reads the major version out of `dockerd --version`'s output
// or a bare version ("29.1.2", "v28.5.1"); 0 when there is none.
func ParseMajor(s string) int {
	s = strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(s, "Docker version "); ok {
		s = rest
	}
	s = strings.TrimPrefix(s, "v")
	digits := s[:len(s)-len(strings.TrimLeft(s, "0123456789"))]
	if digits == "" || len(digits) > 4 || !strings.HasPrefix(s[len(digits):], ".") {
		return 0
	}
	n, _ := strconv.Atoi(digits)
	return n
}

// EngineOfVersion is the engine a version string describes (an image's
// DOCKER_VERSION, say).
func EngineOfVersion(version string) Engine {
	major := ParseMajor(version)
	return Engine{Major: major, Features: major >= 23}
}

// ProbeEngine asks dockerd --help (of the binary argv0) what it knows.
func ProbeEngine(argv0 string) (Engine, error) {
	out, err := exec.Command(argv0, "--help").CombinedOutput()
	if err != nil {
		return Engine{}, fmt.Errorf("%s --help: %w", argv0, err)
	}
	return Engine{Features: strings.Contains(string(out), "--feature")}, nil
}

// ProbeMajor asks dockerd --version (of the binary argv0) its major
// version, 0 when it does not say. Only the default store of a fresh cache
// depends on it (Engine.DefaultStore): ask it only then.
func ProbeMajor(argv0 string) int {
	v, err := exec.Command(argv0, "--version").Output()
	if err != nil {
		return 0
	}
	return ParseMajor(string(v))
}

// RequestedStore reads the store a dockerd command line asks for with
// --feature containerd-snapshotter=BOOL; "" when it does not say.
func RequestedStore(argv []string) string {
	for _, v := range FlagValues(argv, "--feature") {
		if name, val, _ := strings.Cut(v, "="); name == featureFlag {
			if val == "true" || val == "" {
				return StoreSnapshotter
			}
			return StoreGraphDriver
		}
	}
	return ""
}

// DecideStore picks the store a daemon must use on a cache: the one it was
// filled with (recorded), else the one the command asks for, else the
// engine's own default for a fresh data root (Engine.DefaultStore).
// A command or an engine that cannot use the recorded store is refused with
// ErrStoreMismatch naming both stores.
func DecideStore(recorded, requested string, eng Engine) (string, error) {
	switch {
	case recorded != "" && requested != "" && requested != recorded:
		return "", fmt.Errorf("%w: the cache holds a %s image store, and the command asks for the %s one, which "+
			"would find it empty; start the daemon with --feature %s=%t, or reset the cache (--reset) to start over",
			ErrStoreMismatch, recorded, requested, featureFlag, recorded == StoreSnapshotter)
	case (recorded == StoreSnapshotter || requested == StoreSnapshotter) && !eng.Features:
		return "", fmt.Errorf("%w: the cache holds (or the command asks for) the %s image store, but this dockerd has "+
			"only the %s one (no --feature); use a Docker 24+ engine, or reset the cache (--reset) to start over",
			ErrStoreMismatch, StoreSnapshotter, StoreGraphDriver)
	case recorded != "":
		return recorded, nil
	case requested != "":
		return requested, nil
	}
	return eng.DefaultStore(), nil
}

// DriverFor is the --storage-driver value that selects store on a
// filesystem where graphDriver (overlay2 or vfs) is what works.
func DriverFor(store, graphDriver string) string {
	if store != StoreSnapshotter {
		return graphDriver
	}
	if graphDriver == "vfs" {
		return "native"
	}
	return "overlayfs"
}

// PinStore adds to a dockerd command line (entrypoint: as PinArgs) the
// switch for store, on engines that have it and when the line does not say
// already.
func PinStore(argv []string, store string, eng Engine, entrypoint bool) []string {
	if !eng.Features || RequestedStore(argv) != "" || !dockerdLine(argv, entrypoint) {
		return argv
	}
	return append(append([]string{}, argv...), fmt.Sprintf("--feature=%s=%t", featureFlag, store == StoreSnapshotter))
}

// DetectStore tells, from a data root a daemon has used, which store holds
// its images: a directory image/<driver>/ is the graph driver's (Docker 29
// with the containerd store keeps only files there, identity-cache.db);
// containerd's metadata without it, the containerd store's (a graph-driver
// daemon of Docker 29 has containerd's metadata too). "" when neither is
// there yet.
func DetectStore(dataRoot string) string {
	entries, _ := os.ReadDir(filepath.Join(dataRoot, "image"))
	for _, e := range entries {
		if e.IsDir() {
			return StoreGraphDriver
		}
	}
	if _, err := os.Stat(filepath.Join(dataRoot, "containerd", "daemon", "io.containerd.metadata.v1.bolt", "meta.db")); err == nil {
		return StoreSnapshotter
	}
	return ""
}
