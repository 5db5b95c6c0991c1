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
func CloneFile(dst, src string) (CloneMethod, error) { return CloneFileWithin(dst, src, nil) }

// CloneFileWithin is CloneFile that, before a copy (no reflink here), asks
// room whether the host can take what the copy writes (src's allocated
// bytes); room's refusal is returned, with nothing left behind.
func CloneFileWithin(dst, src string, room func(need int64) error) (method CloneMethod, retErr error) {
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
	if err := copyFits(s, room); err != nil {
		return "", fmt.Errorf("clone %s: %w", src, err)
	}
	method, err = sparseCopy(dst, s)
	if err != nil {
		return "", fmt.Errorf("clone %s (%s): %w", src, method, err)
	}
	return method, nil
}

// copyFits asks room, when given, about a copy of src's allocated bytes.
func copyFits(src *os.File, room func(int64) error) error {
	if room == nil {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(src.Fd()), &st); err != nil {
		return err
	}
	return room(st.Blocks * 512)
}

// sparseCopy copies the data regions of src into the new file dst
// (SEEK_DATA/SEEK_HOLE, copy_file_range in the kernel), leaving the holes
// holes. Unlike continuity's fs.CopyFile it does not fsync: a clone is a
// job's private, disposable copy, and waiting for gigabytes to reach the
// disk would make it several times slower than cp; a clone damaged by a
// host crash is refused by the next mount's e2fsck, while its source is
// never at risk.
func sparseCopy(dst string, src *os.File) (CloneMethod, error) {
	method := CloneSparseCopy
	st, err := src.Stat()
	if err != nil {
		return method, err
	}
	d, err := os.OpenFile(dst, os.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return method, err
	}
	defer d.Close()
	if err := d.Truncate(st.Size()); err != nil {
		return method, err
	}
	for off := int64(0); off < st.Size(); {
		data, hole, err := nextData(src, off, st.Size())
		if errors.Is(err, unix.ENXIO) {
			break // only a hole is left
		}
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
			method, data, hole = ClonePlainCopy, off, st.Size() // no SEEK_DATA here
		} else if err != nil {
			return method, err
		}
		m, err := copyRange(d, src, data, hole-data)
		if err != nil {
			return m, err
		}
		if m == ClonePlainCopy {
			method = m
		}
		off = hole
	}
	return method, d.Close()
}

// nextData finds the next data region [data, hole) at or after off.
func nextData(f *os.File, off, size int64) (data, hole int64, err error) {
	if data, err = unix.Seek(int(f.Fd()), off, unix.SEEK_DATA); err != nil {
		return 0, 0, err
	}
	if hole, err = unix.Seek(int(f.Fd()), data, unix.SEEK_HOLE); err != nil {
		return 0, 0, fmt.Errorf("SEEK_HOLE at %d: %w", data, err)
	}
	return data, min(hole, size), nil
}

// copyRange copies n bytes at off from src to the same offset of dst with
// copy_file_range, or, where the kernel cannot (across filesystems, old
// kernels), by reading and writing, skipping zero blocks so they stay holes.
func copyRange(dst, src *os.File, off, n int64) (CloneMethod, error) {
	in, out := off, off
	for n > 0 {
		c, err := unix.CopyFileRange(int(src.Fd()), &in, int(dst.Fd()), &out, int(min(n, 1<<30)), 0)
		if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) {
			return ClonePlainCopy, plainCopy(dst, src, in, n)
		}
		if err != nil {
			return CloneSparseCopy, fmt.Errorf("copy_file_range at %d: %w", in, err)
		}
		if c == 0 {
			return CloneSparseCopy, fmt.Errorf("copy_file_range at %d: no progress", in)
		}
		n -= int64(c)
	}
	return CloneSparseCopy, nil
}

// plainCopy reads and writes n bytes at off, leaving all-zero blocks as
// holes (dst was truncated to size, so they read as zeros).
func plainCopy(dst, src *os.File, off, n int64) error {
	buf := make([]byte, 1<<20)
	for n > 0 {
		k, err := src.ReadAt(buf[:min(n, int64(len(buf)))], off)
		if k == 0 && err != nil {
			return fmt.Errorf("read at %d: %w", off, err)
		}
		for b := 0; b < k; b += 64 << 10 {
			block := buf[b:min(b+64<<10, k)]
			if !allZero(block) {
				if _, err := dst.WriteAt(block, off+int64(b)); err != nil {
					return err
				}
			}
		}
		off, n = off+int64(k), n-int64(k)
	}
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// CloneDir copies a dir or vfs cache's tree with hard links, xattrs, device
// nodes and overlay whiteouts intact (continuity's fs.CopyDir): O(data).
func CloneDir(dst, src string) (CloneMethod, error) {
	if err := fs.CopyDir(dst, src); err != nil {
		return "", fmt.Errorf("clone %s: %w", src, err)
	}
	return CloneTreeCopy, nil
}
