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
// copy_file_range, continuity's fs.CopyFile), which keeps holes. It says
// which way was taken. On failure dst is removed.
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
	if err := fs.CopyFile(dst, src); err != nil {
		return "", fmt.Errorf("clone %s (sparse copy): %w", src, err)
	}
	return CloneSparseCopy, nil
}

// CloneDir copies a dir or vfs cache's tree with hard links, xattrs, device
// nodes and overlay whiteouts intact (continuity's fs.CopyDir): O(data).
func CloneDir(dst, src string) (CloneMethod, error) {
	if err := fs.CopyDir(dst, src); err != nil {
		return "", fmt.Errorf("clone %s: %w", src, err)
	}
	return CloneTreeCopy, nil
}
