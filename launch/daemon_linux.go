package launch

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// daemonProcAttr makes the kernel kill a daemon dindstore started when
// dindstore dies: the daemon must not outlive the cache's lock. With
// cgroup, the daemon starts in that cgroup.
func daemonProcAttr(cgroup *os.File) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if cgroup != nil {
		a.UseCgroupFD, a.CgroupFD = true, int(cgroup.Fd())
	}
	return a
}

// RemoveDaemonDirs removes the private directories of the daemons that
// process pid started (StartDaemonWith) and left when it was killed: what
// is mounted below one (a dead daemon's exec root) is unmounted first, and
// a directory that still has a mount below it, is a symlink or is not
// this user's is left alone. Call it once pid and its daemons are gone.
func RemoveDaemonDirs(pid int) error {
	dirs, err := filepath.Glob(filepath.Join(os.TempDir(), daemonDirPrefix(pid)+"*"))
	if err != nil {
		return err
	}
	var errs []error
	for _, dir := range dirs {
		if err := removeDaemonDir(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeDaemonDir unmounts what is below dir, then removes it.
func removeDaemonDir(dir string) error {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return nil // gone already
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s: not a directory of uid %d; left alone", dir, os.Geteuid())
	}
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return err
	}
	for i := len(mounts) - 1; i >= 0; i-- { // later mounts may sit on earlier ones: undo in reverse
		_ = unix.Unmount(mounts[i].Mountpoint, 0)
	}
	if left, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir)); err != nil || len(left) > 0 {
		return fmt.Errorf("%s: still has mounts below it; left alone", dir)
	}
	return os.RemoveAll(dir)
}
