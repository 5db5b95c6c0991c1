//go:build linux

package volumes

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/dindstore/dindstore/loopdev"
	"github.com/dindstore/dindstore/procscan"
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
