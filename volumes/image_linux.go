package volumes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/dindstore/dindstore/internal/fault"
	"github.com/dindstore/dindstore/loopdev"
	"golang.org/x/sys/unix"
)

// run executes a tool with an argument list (never through a shell) and puts
// its combined output into the error.
func run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return nil, fmt.Errorf("%s not found: install it (e2fsprogs / xfsprogs): %w", name, err)
		}
		return out.Bytes(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err,
			strings.TrimSpace(out.String()))
	}
	return out.Bytes(), nil
}

// CreateImage makes a sparse image of size bytes at path, formatted with fs
// on the file itself (not on a loop device) so that it stays sparse. The
// image is built under a temporary name and renamed into place, so path
// either does not exist or holds a complete filesystem. path must not exist.
func CreateImage(ctx context.Context, path string, size int64, fs FS) (retErr error) {
	if size < fs.MinSize() {
		return fmt.Errorf("%w: size %d is below the %s minimum of %d bytes", ErrInvalid, size, fs, fs.MinSize())
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create image %s: %w", tmp, err)
	}
	defer func() {
		if retErr != nil {
			os.Remove(tmp)
		}
	}()
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("truncate image %s to %d bytes: %w", tmp, size, err)
	}
	if err := fault.Point("after-truncate"); err != nil {
		return err
	}
	if err := mkfs(ctx, tmp, fs); err != nil {
		return err
	}
	if err := fault.Point("after-mkfs"); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename image into place: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

func mkfs(ctx context.Context, image string, fs FS) error {
	if fs == XFS {
		_, err := run(ctx, "mkfs.xfs", xfsArgs(image)...)
		return err
	}
	out, err := run(ctx, "mke2fs", "-V")
	if err != nil {
		return err
	}
	v, err := parseE2fsVersion(string(out))
	if err != nil {
		return err
	}
	_, err = run(ctx, "mkfs.ext4", ext4Args(v, runningKernel(), image)...)
	return err
}

// runningKernel is the version of the running kernel.
func runningKernel() kernelVersion {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return kernelVersion{}
	}
	return parseKernelVersion(unix.ByteSliceToString(u.Release[:]))
}

// CheckImage runs the filesystem's own check before a mount: e2fsck -p for
// ext4 (exit status 4 or more is ErrCheckFailed with e2fsck's output).
// repaired says what e2fsck fixed when it fixed anything (exit 1 or 2). xfs
// replays its log at mount and has no preen mode, so it is not checked here.
func CheckImage(ctx context.Context, image string, fs FS) (repaired string, err error) {
	if fs != Ext4 {
		return "", nil
	}
	out, err := run(ctx, "e2fsck", "-p", image)
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() < 4 {
		return fmt.Sprintf("e2fsck -p repaired %s (exit %d): %s", image, exit.ExitCode(),
			lastLines(strings.TrimSpace(string(out)), 3)), nil
	}
	if err != nil {
		return "", fmt.Errorf("%w: %s needs a manual check (dindstore repair KEY, or e2fsck -f %s): %w", ErrCheckFailed,
			image, image, err)
	}
	return "", nil
}

// lastLines keeps the last n lines of s, joined by " / ".
func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}

// RepairImage checks and repairs an unmounted image for good: e2fsck -f -y
// for ext4, xfs_repair for xfs. It returns the tool's output; an exit
// status that says errors were left is ErrCheckFailed.
func RepairImage(ctx context.Context, image string, fs FS) (string, error) {
	name, args := "e2fsck", []string{"-f", "-y", image}
	if fs == XFS {
		name, args = "xfs_repair", []string{image}
	}
	out, err := run(ctx, name, args...)
	var exit *exec.ExitError
	if fs == Ext4 && errors.As(err, &exit) && exit.ExitCode() < 4 {
		err = nil // 1, 2: errors corrected
	}
	if err != nil {
		return string(out), fmt.Errorf("%w: %s %s: %w", ErrCheckFailed, name, image, err)
	}
	return string(out), nil
}

// CheckSparseSize tells whether the filesystem holding dir can hold a sparse
// file of size bytes (ext4 stops at 16 TiB with 4 KiB blocks), by truncating a
// scratch file there. Too big is ErrInvalid.
func CheckSparseSize(dir string, size int64) error {
	f, err := os.CreateTemp(dir, ".size-probe-")
	if err != nil {
		return fmt.Errorf("probe size in %s: %w", dir, err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		if errors.Is(err, unix.EFBIG) || errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("%w: size %d bytes is more than the filesystem of %s can hold in one file", ErrInvalid, size, dir)
		}
		return fmt.Errorf("probe size in %s: %w", dir, err)
	}
	return nil
}

// checkGrowSize compares the wanted size with the image's: smaller is
// ErrShrink; grow reports whether there is anything to do.
func checkGrowSize(image *os.File, size int64) (old int64, grow bool, err error) {
	st, err := image.Stat()
	if err != nil {
		return 0, false, fmt.Errorf("grow: %w", err)
	}
	if size < st.Size() {
		return st.Size(), false, fmt.Errorf("%w: %s is %d bytes, asked for %d", ErrShrink, image.Name(), st.Size(), size)
	}
	return st.Size(), size > st.Size(), nil
}

// GrowImage grows an unmounted ext4 image, opened read-write by the caller,
// offline to size bytes: the file is extended, checked (e2fsck -f -p, which
// resize2fs requires) and resized. If the check fails the file gets its old
// size back. A size below the current one is ErrShrink; the same size does
// nothing. xfs grows only while mounted (GrowMounted). Every step works on
// the open file (the tools through FDPath), never on a name that could
// have been swapped for a link meanwhile.
func GrowImage(ctx context.Context, image *os.File, size int64, fs FS) error {
	if fs != Ext4 {
		return fmt.Errorf("%w: %s grows only while mounted", ErrNotSupported, fs)
	}
	old, grow, err := checkGrowSize(image, size)
	if !grow {
		return err
	}
	name, path := image.Name(), FDPath(image)
	if err := image.Truncate(size); err != nil {
		return fmt.Errorf("grow: truncate %s to %d bytes: %w", name, size, err)
	}
	if err := fault.Point("during-grow"); err != nil {
		return errors.Join(err, image.Truncate(old))
	}
	if _, err := run(ctx, "e2fsck", "-f", "-p", path); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() >= 4 {
			return errors.Join(fmt.Errorf("grow %s: %w: %w", name, ErrCheckFailed, err), image.Truncate(old))
		}
	}
	if err := fault.Point("during-resize"); err != nil {
		return err // the file is grown, the filesystem not yet: recover completes or undoes it
	}
	if _, err := run(ctx, "resize2fs", path); err != nil {
		// resize2fs writes the superblock last: while it still gives the
		// old size, nothing lives past it and the file can shrink back.
		if st, serr := ReadStats(path, fs); serr == nil && st.SizeBytes <= old {
			if terr := image.Truncate(old); terr != nil {
				return fmt.Errorf("grow %s: resize2fs failed (%w), and the image could not shrink back to %d bytes: %w", name, err, old, terr)
			}
			return fmt.Errorf("grow %s: resize2fs failed, the image is back to %d bytes: %w", name, old, err)
		}
		return fmt.Errorf("grow %s: the image file is %d bytes but its filesystem was not resized; run `dindstore grow` again: %w", name, size, err)
	}
	return nil
}

// GrowMounted grows a mounted loop image (opened by the caller) online to
// size bytes: the file is extended, the loop device told
// (LOOP_SET_CAPACITY), then the filesystem resized (resize2fs on the
// device, xfs_growfs on the mount point). Online ext4 resizing needs
// CAP_SYS_RESOURCE; without it nothing is changed and the error wraps
// ErrNotSupported.
func GrowMounted(ctx context.Context, image *os.File, size int64, fs FS, device, mountpoint string) error {
	if fs == Ext4 && !hasCapSysResource() {
		return fmt.Errorf("%w: growing a mounted ext4 cache needs CAP_SYS_RESOURCE, which this process lacks; grow it while it is not in use", ErrNotSupported)
	}
	_, grow, err := checkGrowSize(image, size)
	if !grow {
		return err
	}
	if err := image.Truncate(size); err != nil {
		return fmt.Errorf("grow: truncate %s to %d bytes: %w", image.Name(), size, err)
	}
	if err := loopdev.SetCapacity(device); err != nil {
		return fmt.Errorf("grow: %w", err)
	}
	if fs == XFS {
		_, err = run(ctx, "xfs_growfs", mountpoint)
	} else {
		_, err = run(ctx, "resize2fs", device)
	}
	if err != nil {
		return fmt.Errorf("grow: the image file is %d bytes but its filesystem was not resized; run `dindstore grow` again: %w", size, err)
	}
	return nil
}

// hasCapSysResource reads the effective capability set of this process.
func hasCapSysResource() bool {
	var hdr = unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[unix.CAP_SYS_RESOURCE/32].Effective&(1<<(unix.CAP_SYS_RESOURCE%32)) != 0
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
