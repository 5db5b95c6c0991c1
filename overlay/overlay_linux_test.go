package overlay

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dindstore/dindstore/internal/testutil"
	"golang.org/x/sys/unix"
)

func TestProbeSupported(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := t.TempDir()
	r, err := Probe(dir)
	if err != nil {
		t.Fatal(err)
	}
	if r.FSType == "overlay" {
		t.Skip("skipping: the test's temp dir is itself on overlay")
	}
	if err := r.Err(); err != nil {
		t.Fatalf("overlay not supported on %s: %v", r.FSType, err)
	}
	left, _ := os.ReadDir(dir)
	if len(left) != 0 {
		t.Fatalf("probe left %d entries in %s", len(left), dir)
	}
}

// TestProbeOnOverlay probes a directory inside an overlay mount: refused,
// with a reason.
func TestProbeOnOverlay(t *testing.T) {
	testutil.RequiresRoot(t)
	base := t.TempDir()
	for _, d := range []string{"lower", "upper", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(base, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	merged := filepath.Join(base, "merged")
	opts := "lowerdir=" + base + "/lower,upperdir=" + base + "/upper,workdir=" + base + "/work"
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		t.Skipf("skipping: cannot mount overlay here: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(merged, unix.MNT_DETACH) })
	r, err := Probe(merged)
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(r.Err(), ErrNotSupported) || !strings.Contains(r.Reason, "overlay") {
		t.Fatalf("probe on overlay: %+v", r)
	}
}
