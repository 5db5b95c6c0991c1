package cache

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// DefaultRoot is where dindstore keeps everything when --root and
// DINDSTORE_ROOT are not given.
const DefaultRoot = "/var/lib/dindstore"

// subdirs are created below the root, 0700 each.
var subdirs = []string{"records", "locks", "images", "data", "mounts", "tmp", "logs", "pulls"}

// Root is a validated dindstore root directory.
type Root struct {
	path string
}

// Path returns the root's absolute path.
func (r *Root) Path() string { return r.path }

// OpenRoot validates the root at path and, with create, makes it (0700) and
// its subdirectories when missing. A root (or subdirectory) that is a
// symlink, not a directory, not owned by this user, or group- or
// world-writable is refused with ErrInvalid: dindstore never follows a link
// it did not create. Without create, a missing root is ErrNotFound.
func OpenRoot(path string, create bool) (*Root, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("%w: root %q must be an absolute path", ErrInvalid, path)
	}
	path = filepath.Clean(path)
	if err := noLinkOnPath(path); err != nil {
		return nil, err
	}
	if outer := enclosingRoot(path); outer != "" {
		return nil, fmt.Errorf("%w: root %s lies inside the dindstore root %s: a root there would see its caches "+
			"unmounted by the other's releases; pick a directory outside it", ErrInvalid, path, outer)
	}
	if err := checkDir(path, create); err != nil {
		return nil, err
	}
	for _, d := range subdirs {
		// A root made by an older dindstore may lack a newer subdirectory.
		if err := checkDir(filepath.Join(path, d), true); err != nil {
			return nil, err
		}
	}
	return &Root{path: path}, nil
}

// OpenRootNoCreate opens an existing root and creates nothing, not even a
// missing subdirectory (which is ErrNotFound): for a process that may run
// after the root is gone (a lease's guard).
func OpenRootNoCreate(path string) (*Root, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("%w: root %q must be an absolute path", ErrInvalid, path)
	}
	path = filepath.Clean(path)
	if err := noLinkOnPath(path); err != nil {
		return nil, err
	}
	for _, d := range append([]string{""}, subdirs...) {
		if err := checkDir(filepath.Join(path, d), false); err != nil {
			return nil, err
		}
	}
	return &Root{path: path}, nil
}

// noLinkOnPath refuses a root with a symlink anywhere on its path, not
// only as its last component: the root would be built, and every cache
// written, wherever the link points now. It names the link and the real
// path to give instead. Components that do not exist yet are fine (create
// makes them as directories).
func noLinkOnPath(path string) error {
	for dir := path; dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
		fi, err := os.Lstat(dir)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			continue
		}
		real, err := filepath.EvalSymlinks(path)
		if err != nil {
			real = "the directory it points to"
		}
		return fmt.Errorf("%w: root %s: %s is a symlink; dindstore follows no link on its root's path, give the real "+
			"path (%s)", ErrInvalid, path, dir, real)
	}
	return nil
}

// enclosingRoot returns the nearest ancestor of path that is a dindstore
// root (it has every one of the root's subdirectories), "" when none is.
func enclosingRoot(path string) string {
	for dir := filepath.Dir(path); dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
		if isRoot(dir) {
			return dir
		}
	}
	return ""
}

// isRoot tells a dindstore root by the subdirectories every version made.
func isRoot(dir string) bool {
	for _, d := range []string{"records", "locks", "images", "mounts"} {
		if fi, err := os.Lstat(filepath.Join(dir, d)); err != nil || !fi.IsDir() {
			return false
		}
	}
	return true
}

// checkDir makes sure path is a safe directory, creating it when asked.
func checkDir(path string, create bool) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		if !create {
			return fmt.Errorf("%w: %s does not exist", ErrNotFound, path)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
		}
		if err := os.Mkdir(path, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create %s: %w", path, err)
		}
		if fi, err = os.Lstat(path); err != nil {
			return err
		}
	} else if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	return checkSafe(path, fi)
}

func checkSafe(path string, fi os.FileInfo) error {
	switch {
	case fi.Mode()&os.ModeSymlink != 0:
		return fmt.Errorf("%w: %s is a symlink; dindstore does not follow links in its root, point --root at the real directory", ErrInvalid, path)
	case !fi.IsDir():
		return fmt.Errorf("%w: %s is not a directory", ErrInvalid, path)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("%w: %s is group- or world-writable (mode %o); run `chmod 0700 %s`", ErrInvalid, path, fi.Mode().Perm(), path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%w: %s is owned by uid %d, not by uid %d running dindstore", ErrInvalid, path, st.Uid, os.Geteuid())
	}
	return nil
}

func (r *Root) recordPath(key string) string { return filepath.Join(r.path, "records", key+".json") }
func (r *Root) lockPath(key string) string   { return filepath.Join(r.path, "locks", key+".lock") }
func (r *Root) ownerPath(key string) string  { return filepath.Join(r.path, "locks", key+".owner") }
func (r *Root) damagedPath(key string) string {
	return filepath.Join(r.path, "locks", key+".damaged")
}
func (r *Root) imagePath(key string) string { return filepath.Join(r.path, "images", key+".img") }
func (r *Root) dataPath(key string) string  { return filepath.Join(r.path, "data", key) }
func (r *Root) pullPath(key string) string  { return filepath.Join(r.path, "pulls", key+".img") }
func (r *Root) tmpDir() string              { return filepath.Join(r.path, "tmp") }

// LogPath is where a detached holder of key (and the inner daemon of a warm)
// writes what it has to say.
func (r *Root) LogPath(key string) string { return filepath.Join(r.path, "logs", key+".log") }

// OpenLog opens the log of key for appending, walking from the root without
// following links, and refusing a file that is not a regular file of ours.
func (r *Root) OpenLog(key string) (*os.File, error) {
	f, err := r.openOwned(r.LogPath(key), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the log of %q: %w", key, err)
	}
	return f, nil
}

// touchOwned makes an empty file below the root (a marker), or leaves the
// one there, refusing anything but a regular file of this user.
func (r *Root) touchOwned(path string) error {
	f, err := r.openOwned(path, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	return f.Close()
}

// removeIfExists removes path; one that is not there is no error.
func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// openOwned opens a file below the root (see open) and refuses anything but
// a regular file owned by this user (see checkOwnedRegular).
func (r *Root) openOwned(path string, flags int, perm uint32) (*os.File, error) {
	f, err := r.open(path, flags, perm)
	if err != nil {
		return nil, err
	}
	if err := checkOwnedRegular(f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// MountPath is where the cache with key is mounted while in use.
func (r *Root) MountPath(key string) string { return filepath.Join(r.path, "mounts", key) }
