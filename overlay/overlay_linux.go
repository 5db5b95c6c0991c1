package overlay

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/continuity/fs"
	"golang.org/x/sys/unix"
)

// Probe tests dir the way dockerd's overlay2 driver does. It creates and
// removes a scratch directory below dir; dir must exist and be writable. The
// returned error is for failures of the probe itself (dir unreadable); a
// filesystem that cannot hold overlay gives a Result whose Err is non-nil.
func Probe(dir string) (Result, error) {
	r := Result{Dir: dir}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return r, fmt.Errorf("overlay: statfs %s: %w", dir, err)
	}
	r.FSType = FSName(int64(st.Type))
	if r.FSType == "overlay" {
		// An overlay upper dir on overlay is refused by the kernel, or
		// worse, accepted by some kernels and broken later.
		r.Reason = "the directory is itself on overlay; overlay cannot be stacked on overlay"
		return r, nil
	}
	scratch, err := os.MkdirTemp(dir, ".dindstore-overlay-probe-")
	if err != nil {
		return r, fmt.Errorf("overlay: make probe dir in %s: %w", dir, err)
	}
	defer os.RemoveAll(scratch)

	r.DType, err = fs.SupportsDType(scratch)
	if err != nil {
		return r, fmt.Errorf("overlay: d_type check on %s: %w", dir, err)
	}
	if !r.DType {
		r.Reason = "the filesystem does not return d_type (xfs needs ftype=1)"
		return r, nil
	}
	if err := mountTwoLowers(scratch); err != nil {
		r.Reason = err.Error()
		return r, nil
	}
	r.Mount = true
	return r, nil
}

// mountTwoLowers mounts an overlay with two lower dirs in scratch, writes
// through it, and unmounts it.
func mountTwoLowers(scratch string) error {
	dirs := map[string]string{}
	for _, d := range []string{"l1", "l2", "upper", "work", "merged"} {
		dirs[d] = filepath.Join(scratch, d)
		if err := os.Mkdir(dirs[d], 0o700); err != nil {
			return err
		}
	}
	opts := fmt.Sprintf("lowerdir=%s:%s,upperdir=%s,workdir=%s", dirs["l1"], dirs["l2"], dirs["upper"], dirs["work"])
	if err := unix.Mount("overlay", dirs["merged"], "overlay", 0, opts); err != nil {
		return fmt.Errorf("overlay mount failed: %w", err)
	}
	defer unix.Unmount(dirs["merged"], unix.MNT_DETACH)
	probe := filepath.Join(dirs["merged"], "probe")
	if err := os.WriteFile(probe, []byte("x"), 0o600); err != nil {
		return fmt.Errorf("write through overlay failed: %w", err)
	}
	return nil
}

// FSType returns the name of the filesystem holding path.
func FSType(path string) (string, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return "", fmt.Errorf("statfs %s: %w", path, err)
	}
	return FSName(int64(st.Type)), nil
}
