package cache

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// open opens path, which must lie below the root, walking from the root
// without following any symlink and without leaving the root (openat2 with
// RESOLVE_BENEATH and RESOLVE_NO_SYMLINKS). Kernels before 5.6 lack openat2;
// there the last component is opened with O_NOFOLLOW and the directories on
// the way were checked by OpenRoot. A symlink on the way is ErrInvalid.
func (r *Root) open(path string, flags int, perm uint32) (*os.File, error) {
	rel, err := filepath.Rel(r.path, path)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return nil, fmt.Errorf("%w: %s is not below the root %s", ErrInvalid, path, r.path)
	}
	flags |= unix.O_CLOEXEC | unix.O_NOFOLLOW
	root, err := unix.Open(r.path, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open root %s: %w", r.path, err)
	}
	defer unix.Close(root)
	how := unix.OpenHow{Flags: uint64(flags), Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS}
	if flags&unix.O_CREAT != 0 {
		how.Mode = uint64(perm)
	}
	fd, err := unix.Openat2(root, rel, &how)
	if errors.Is(err, unix.ENOSYS) {
		fd, err = unix.Openat(root, rel, flags, perm)
	}
	switch {
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.EXDEV):
		return nil, fmt.Errorf("%w: refusing %s: a symlink is on its path (dindstore never follows links in its root)", ErrInvalid, path)
	case err != nil:
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// checkOwnedRegular refuses a file that is not a regular file owned by this
// user: a FIFO would block a reader, a file of another user was not written
// by dindstore.
func checkOwnedRegular(f *os.File) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%w: %s is not a regular file", ErrInvalid, f.Name())
	}
	if int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%w: %s is owned by uid %d, not by uid %d running dindstore", ErrInvalid, f.Name(), st.Uid, os.Geteuid())
	}
	return nil
}

// pinDir opens the directory at path below the root (no symlinks on the
// way) and returns it with a /proc/self/fd path that names exactly that
// directory: mounting onto or from it cannot be redirected by a symlink
// planted after the check. Close the file once the mount is made.
func (r *Root) pinDir(path string) (*os.File, string, error) {
	f, err := r.open(path, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		if errors.Is(err, unix.ENOTDIR) {
			return nil, "", fmt.Errorf("%w: %s is not a directory", ErrInvalid, path)
		}
		return nil, "", err
	}
	return f, fmt.Sprintf("/proc/self/fd/%d", f.Fd()), nil
}
