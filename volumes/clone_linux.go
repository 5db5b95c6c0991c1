package volumes

import (
	"errors"
	"fmt"
	"os"

	"github.com/containerd/continuity/fs"
	"golang.org/x/sys/unix"
)

// CloneFile copies the image at src to dst, which must not exist, the
// cheapest way the host filesystem allows: FICLONE (a reflink: O(1) on xfs
// with reflink=1 and on btrfs), else a sparse copy (SEEK_DATA/SEEK_HOLE with
// copy_file_range), which keeps holes. It says which way was taken. On
// failure dst is removed.
func CloneFile(dst, src string) (method CloneMethod, retErr error) {
	s, err := os.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("clone: open %s: %w", src, err)
	}
	defer s.Close()
	d, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return "", fmt.Errorf("clone: create %s: %w", dst, err)
	}
	defer func() {
		if retErr != nil {
			os.Remove(dst)
		}
	}()
	err = unix.IoctlFileClone(int(d.Fd()), int(s.Fd()))
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		return CloneReflink, nil
	}
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EXDEV) && !errors.Is(err, unix.EINVAL) &&
		!errors.Is(err, unix.ENOTTY) && !errors.Is(err, unix.ENOSYS) {
		return "", fmt.Errorf("clone %s (FICLONE): %w", src, err)
	}
	if err := sparseCopy(dst, s); err != nil {
		return "", fmt.Errorf("clone %s (sparse copy): %w", src, err)
	}
	return CloneSparseCopy, nil
}

// sparseCopy copies the data regions of src into the new file dst
// (SEEK_DATA/SEEK_HOLE, copy_file_range in the kernel), leaving the holes
// holes. Unlike continuity's fs.CopyFile it does not fsync: a clone is a
// job's private, disposable copy, and waiting for gigabytes to reach the
// disk would make it several times slower than cp; a clone damaged by a
// host crash is refused by the next mount's e2fsck, while its source is
// never at risk.
func sparseCopy(dst string, src *os.File) error {
	st, err := src.Stat()
	if err != nil {
		return err
	}
	d, err := os.OpenFile(dst, os.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Truncate(st.Size()); err != nil {
		return err
	}
	for off := int64(0); off < st.Size(); {
		data, err := unix.Seek(int(src.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole is left
		}
		if err != nil {
			return fmt.Errorf("SEEK_DATA at %d: %w", off, err)
		}
		hole, err := unix.Seek(int(src.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			return fmt.Errorf("SEEK_HOLE at %d: %w", data, err)
		}
		if err := copyRange(d, src, data, hole-data); err != nil {
			return err
		}
		off = hole
	}
	return d.Close()
}

// copyRange copies n bytes at off from src to the same offset of dst.
func copyRange(dst, src *os.File, off, n int64) error {
	in, out := off, off
	for n > 0 {
		chunk := min(n, 1<<30)
		c, err := unix.CopyFileRange(int(src.Fd()), &in, int(dst.Fd()), &out, int(chunk), 0)
		if err != nil {
			return fmt.Errorf("copy_file_range at %d: %w", in, err)
		}
		if c == 0 {
			return fmt.Errorf("copy_file_range at %d: no progress", in)
		}
		n -= int64(c)
	}
	return nil
}

// CloneDir copies a dir or vfs cache's tree with hard links, xattrs, device
// nodes and overlay whiteouts intact (continuity's fs.CopyDir): O(data).
func CloneDir(dst, src string) (CloneMethod, error) {
	if err := fs.CopyDir(dst, src); err != nil {
		return "", fmt.Errorf("clone %s: %w", src, err)
	}
	return CloneTreeCopy, nil
}
