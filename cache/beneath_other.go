//go:build !linux

package cache

import (
	"fmt"
	"os"
	"syscall"
)

// open opens path with O_NOFOLLOW; outside Linux there is no openat2, and
// the directories on the way were checked by OpenRoot.
func (r *Root) open(path string, flags int, perm uint32) (*os.File, error) {
	return os.OpenFile(path, flags|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, os.FileMode(perm))
}

// checkOwnedRegular refuses a file that is not a regular file owned by this
// user.
func checkOwnedRegular(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file", ErrInvalid, f.Name())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%w: %s is owned by uid %d", ErrInvalid, f.Name(), st.Uid)
	}
	return nil
}

// pinDir opens the directory at path; outside Linux the path itself is
// used for mounting.
func (r *Root) pinDir(path string) (*os.File, string, error) {
	f, err := r.open(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, "", err
	}
	return f, path, nil
}
