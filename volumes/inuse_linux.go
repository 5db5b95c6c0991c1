//go:build linux

package volumes

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dindstore/dindstore/loopdev"
	"github.com/dindstore/dindstore/procscan"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// FindImageUse tells what still uses a loop image: the loop devices bound
// to it (matched by the image's device and inode) and, when there are any,
// the processes whose mount namespaces or open files hold their
// filesystem. mountpoint is where dindstore mounts the image; its own
// mounts there are not users (the caller clears them), but overlays
// stacked on it, in any namespace, count as the filesystem.
func FindImageUse(image, mountpoint string) (*ImageUse, error) {
	devs, err := loopdev.FindByFile(image)
	if err != nil {
		return nil, fmt.Errorf("find loop devices of %s: %w", image, err)
	}
	use := &ImageUse{Image: image}
	if len(devs) == 0 {
		return use, nil
	}
	target := procscan.Target{PathPrefix: mountpoint, Ignore: []string{mountpoint}}
	for _, d := range devs {
		use.Devices = append(use.Devices, d.Path)
		var st unix.Stat_t
		if err := unix.Stat(d.Path, &st); err != nil {
			continue // detached meanwhile
		}
		dev := procscan.Dev{Major: unix.Major(st.Rdev), Minor: unix.Minor(st.Rdev)}
		target.Devs, target.Blocks = append(target.Devs, dev), append(target.Blocks, dev)
	}
	if use.Users, err = procscan.Find(target); err != nil {
		return nil, err
	}
	return use, nil
}

// BoundImages maps each image file directly in dir that a loop device is
// bound to (matched by device and inode) to those devices.
func BoundImages(dir string) (map[string][]string, error) {
	devs, err := loopdev.List()
	if err != nil {
		return nil, fmt.Errorf("list loop devices: %w", err)
	}
	out := map[string][]string{}
	if len(devs) == 0 {
		return out, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	byID := map[[2]uint64]string{}
	for _, e := range entries {
		var st unix.Stat_t
		p := filepath.Join(dir, e.Name())
		if unix.Lstat(p, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
			byID[[2]uint64{uint64(st.Dev), st.Ino}] = p
		}
	}
	for _, d := range devs {
		if p, ok := byID[[2]uint64{d.BackingDev, d.BackingInode}]; ok {
			out[p] = append(out[p], d.Path)
		}
	}
	return out, nil
}

// ImageDevices lists the loop devices bound to the image, matched by its
// device and inode (never by name).
func ImageDevices(image string) ([]LoopInfo, error) { return loopdev.FindByFile(image) }

// TaggedDevices lists the bound loop devices whose tag starts with prefix.
func TaggedDevices(prefix string) ([]LoopInfo, error) { return loopdev.ListTagged(prefix) }

// DetachDevice detaches d if it is still backed by the same file, and
// waits up to wait for the kernel to really unbind it: LOOP_CLR_FD on a
// device that something still holds only marks it for autoclear, which an
// error past wait says (wrapping EBUSY).
func DetachDevice(d LoopInfo, wait time.Duration) error {
	if err := loopdev.DetachIfBacked(d.Path, d.BackingDev, d.BackingInode); err != nil {
		return err
	}
	if wait <= 0 {
		return nil
	}
	return loopdev.WaitDetached(d.Path, d.BackingDev, d.BackingInode, wait)
}

// FindDirUse tells which mount namespaces still hold a bind mount of the
// directory dir (a dir or vfs cache's data) other than dindstore's own at
// mountpoint: matched by the filesystem's device and the mount's root in
// it, since a bind mount of a host directory cannot be told from the rest
// of its filesystem by device alone. Open files are not looked at.
func FindDirUse(dir, mountpoint string) ([]procscan.User, error) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return nil, fmt.Errorf("find users of %s: %w", dir, err)
	}
	root, err := fsRelative(dir, st.Dev)
	if err != nil {
		return nil, err
	}
	tree := procscan.Tree{Dev: procscan.Dev{Major: unix.Major(uint64(st.Dev)), Minor: unix.Minor(uint64(st.Dev))}, Root: root}
	return procscan.Find(procscan.Target{Trees: []procscan.Tree{tree}, Ignore: []string{mountpoint}})
}

// fsRelative is dir's path relative to the root of its filesystem, from
// the deepest mount of that filesystem that holds it in this namespace.
func fsRelative(dir string, dev uint64) (string, error) {
	mounts, err := mountinfo.GetMounts(mountinfo.ParentsFilter(dir))
	if err != nil {
		return "", fmt.Errorf("find the mount of %s: %w", dir, err)
	}
	best := -1
	for i, m := range mounts {
		if unix.Mkdev(uint32(m.Major), uint32(m.Minor)) == dev && (best < 0 || len(m.Mountpoint) > len(mounts[best].Mountpoint)) {
			best = i
		}
	}
	if best < 0 {
		return "", fmt.Errorf("find the mount of %s: none of device %d:%d", dir, unix.Major(dev), unix.Minor(dev))
	}
	m := mounts[best]
	rel := strings.TrimPrefix(dir, m.Mountpoint)
	return filepath.Join(m.Root, rel), nil
}
