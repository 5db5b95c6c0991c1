package loopdev

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	loopControl = "/dev/loop-control"
	// maxAttempts bounds the allocation retries (util-linux and systemd use 64).
	maxAttempts = 64
)

// Attach binds the file at backing to a free loop device and returns the
// device, open, as the kernel sees it after the attach. The device always has
// LO_FLAGS_AUTOCLEAR set, so the kernel detaches it when its last user goes:
// the caller mounts (or otherwise opens) it and then calls Close, after which
// the mount owns the device's lifetime. Closing without a user detaches it.
func Attach(backing string, p Params) (*Device, error) {
	flags := unix.O_RDWR
	if p.ReadOnly {
		flags = unix.O_RDONLY
	}
	f, err := os.OpenFile(backing, flags|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("loopdev: open backing file: %w", err)
	}
	defer f.Close()
	return AttachFile(f, p)
}

// AttachFile is Attach of a file the caller opened (read-write, or
// read-only for Params.ReadOnly): the device is bound to exactly that
// inode, whatever its path now names.
func AttachFile(f *os.File, p Params) (*Device, error) {
	backing := f.Name()
	if err := ValidBlockSize(p.BlockSize); err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("loopdev: stat %s: %w", backing, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("loopdev: %s is not a regular file", backing)
	}
	var lastErr error
	for attempt := 0; attempt < maxAttempts; attempt++ {
		dev, err := attachLocked(f, &st, p)
		if err == nil {
			return dev, nil
		}
		if !retryable(err) {
			return nil, fmt.Errorf("loopdev: attach %s: %w", backing, err)
		}
		lastErr = err
		backoff(attempt) // without the lock, so that others go on meanwhile
	}
	return nil, fmt.Errorf("loopdev: attach %s: gave up after %d tries (last: %v): %w",
		backing, maxAttempts, lastErr, ErrNoLoopDevice)
}

// lockControl opens /dev/loop-control and takes an exclusive flock on it, as
// util-linux does, so that concurrent allocations do not race for one device.
func lockControl() (*os.File, error) {
	ctl, err := os.OpenFile(loopControl, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("loopdev: open %s (is the loop module loaded?): %v: %w",
			loopControl, err, ErrNoLoopDevice)
	}
	for err = unix.EINTR; err == unix.EINTR; {
		err = unix.Flock(int(ctl.Fd()), unix.LOCK_EX)
	}
	if err != nil {
		ctl.Close()
		return nil, fmt.Errorf("loopdev: lock %s: %w", loopControl, err)
	}
	return ctl, nil
}

// attachLocked makes one try under the /dev/loop-control lock.
func attachLocked(backing *os.File, st *unix.Stat_t, p Params) (*Device, error) {
	ctl, err := lockControl()
	if err != nil {
		return nil, err
	}
	defer ctl.Close() // closing the descriptor releases the flock
	return attachFree(ctl, backing, st, p)
}

// attachFree asks for a free device and binds the backing file to it.
func attachFree(ctl *os.File, backing *os.File, st *unix.Stat_t, p Params) (_ *Device, retErr error) {
	num, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
	if err != nil {
		return nil, fmt.Errorf("LOOP_CTL_GET_FREE: %w", err)
	}
	path, err := ensureNode(num)
	if err != nil {
		return nil, err
	}
	flags := unix.O_RDWR
	if p.ReadOnly {
		flags = unix.O_RDONLY
	}
	dev, err := os.OpenFile(path, flags|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err // ENOENT/ENXIO: a device being torn down; retried
	}
	defer func() {
		if retErr != nil {
			dev.Close()
		}
	}()
	fd := int(dev.Fd())
	// GET_FREE answered, but another process outside our lock (a plain
	// losetup of an older util-linux) may have bound it since: confirm.
	if _, err := unix.IoctlLoopGetStatus64(fd); err == nil {
		return nil, unix.EBUSY
	} else if err != unix.ENXIO {
		return nil, fmt.Errorf("LOOP_GET_STATUS64 %s: %w", path, err)
	}
	if err := configure(fd, int(backing.Fd()), p); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	info, err := status(fd, path, num)
	if err != nil {
		return nil, err
	}
	if info.BackingDev != uint64(st.Dev) || info.BackingInode != st.Ino {
		// Not ours: never clear a device we did not bind.
		return nil, fmt.Errorf("%s is backed by dev %d inode %d, not by the file asked for (dev %d inode %d)",
			path, info.BackingDev, info.BackingInode, st.Dev, st.Ino)
	}
	return &Device{Info: *info, file: dev}, nil
}

// loopConfigure is LOOP_CONFIGURE; tests replace it to drive the fallback
// that kernels before 5.8 take.
var loopConfigure = unix.IoctlLoopConfigure

// configure binds fd to the backing file with LOOP_CONFIGURE, falling back to
// LOOP_SET_FD + LOOP_SET_STATUS64 on kernels that do not know it.
func configure(fd, backingFd int, p Params) error {
	info := statusInfo(p)
	cfg := unix.LoopConfig{Fd: uint32(backingFd), Size: p.BlockSize, Info: info} // Size is block_size
	err := loopConfigure(fd, &cfg)
	if err == unix.EINVAL && p.DirectIO {
		// Some kernels refuse the whole configuration when direct I/O
		// cannot be had; try without it and ask for it afterwards.
		cfg.Info.Flags &^= unix.LO_FLAGS_DIRECT_IO
		if err = loopConfigure(fd, &cfg); err == nil {
			_ = unix.IoctlSetInt(fd, unix.LOOP_SET_DIRECT_IO, 1)
			return nil
		}
	}
	switch err {
	case nil:
		return nil
	case unix.EINVAL, unix.ENOTTY, unix.ENOSYS:
		return configureLegacy(fd, backingFd, p)
	default:
		return fmt.Errorf("LOOP_CONFIGURE: %w", err)
	}
}

// configureLegacy is the pre-5.8 way: SET_FD, then SET_STATUS64; any failure
// after SET_FD clears the device again.
func configureLegacy(fd, backingFd int, p Params) (retErr error) {
	if err := unix.IoctlSetInt(fd, unix.LOOP_SET_FD, backingFd); err != nil {
		return fmt.Errorf("LOOP_SET_FD: %w", err)
	}
	defer func() {
		if retErr != nil {
			_ = unix.IoctlSetInt(fd, unix.LOOP_CLR_FD, 0)
		}
	}()
	info := statusInfo(p)
	info.Flags &^= unix.LO_FLAGS_DIRECT_IO | unix.LO_FLAGS_READ_ONLY
	if err := unix.IoctlLoopSetStatus64(fd, &info); err != nil {
		return fmt.Errorf("LOOP_SET_STATUS64: %w", err)
	}
	if p.BlockSize != 0 {
		if err := unix.IoctlSetInt(fd, unix.LOOP_SET_BLOCK_SIZE, int(p.BlockSize)); err != nil {
			return fmt.Errorf("LOOP_SET_BLOCK_SIZE %d: %w", p.BlockSize, err)
		}
	}
	if p.DirectIO {
		_ = unix.IoctlSetInt(fd, unix.LOOP_SET_DIRECT_IO, 1) // best effort, read back later
	}
	return nil
}

func statusInfo(p Params) unix.LoopInfo64 {
	info := unix.LoopInfo64{Flags: unix.LO_FLAGS_AUTOCLEAR}
	if p.DirectIO {
		info.Flags |= unix.LO_FLAGS_DIRECT_IO
	}
	if p.ReadOnly {
		info.Flags |= unix.LO_FLAGS_READ_ONLY
	}
	copy(info.File_name[:TagMax], p.Tag)
	return info
}

// status reads the kernel's view of an open device.
func status(fd int, path string, num int) (*Info, error) {
	li, err := unix.IoctlLoopGetStatus64(fd)
	if err == unix.ENXIO {
		return nil, fmt.Errorf("%s: %w", path, ErrNotBound)
	}
	if err != nil {
		return nil, fmt.Errorf("LOOP_GET_STATUS64 %s: %w", path, err)
	}
	bs, _ := unix.IoctlGetInt(fd, unix.BLKSSZGET) // 0 when unknown
	return &Info{
		BlockSize:    bs,
		Path:         path,
		Number:       num,
		BackingDev:   li.Device,
		BackingInode: li.Inode,
		Tag:          cString(li.File_name[:]),
		Autoclear:    li.Flags&unix.LO_FLAGS_AUTOCLEAR != 0,
		DirectIO:     li.Flags&unix.LO_FLAGS_DIRECT_IO != 0,
		ReadOnly:     li.Flags&unix.LO_FLAGS_READ_ONLY != 0,
	}, nil
}

// ensureNode returns /dev/loopN, creating the node from /sys/block/loopN/dev
// when it is missing.
func ensureNode(num int) (string, error) {
	path := "/dev/loop" + strconv.Itoa(num)
	if _, err := os.Lstat(path); err == nil || !errors.Is(err, os.ErrNotExist) {
		return path, nil
	}
	raw, err := os.ReadFile(fmt.Sprintf("/sys/block/loop%d/dev", num))
	if err != nil {
		return "", unix.ENOENT // the device may not be registered yet: retry
	}
	var maj, min uint32
	if _, err := fmt.Sscanf(strings.TrimSpace(string(raw)), "%d:%d", &maj, &min); err != nil {
		return "", fmt.Errorf("parse /sys/block/loop%d/dev %q: %w", num, raw, err)
	}
	err = unix.Mknod(path, unix.S_IFBLK|0o660, int(unix.Mkdev(maj, min)))
	if err != nil && err != unix.EEXIST {
		return "", fmt.Errorf("mknod %s: %w", path, err)
	}
	return path, nil
}

// Status returns the kernel's view of the device at path (ErrNotBound when it
// has no backing file).
func Status(path string) (*Info, error) {
	dev, err := os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("loopdev: %w", err)
	}
	defer dev.Close()
	return status(int(dev.Fd()), path, numberOf(path))
}

// Detach unbinds the device at path. A device still in use (mounted) is only
// marked for autoclear by the kernel and detached when its last user goes.
func Detach(path string) error {
	dev, err := os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loopdev: detach: %w", err)
	}
	defer dev.Close()
	return clearFD(dev, path)
}

// clearFD issues LOOP_CLR_FD on an open device, retrying EBUSY/EAGAIN.
func clearFD(dev *os.File, path string) error {
	for attempt := 0; ; attempt++ {
		err := unix.IoctlSetInt(int(dev.Fd()), unix.LOOP_CLR_FD, 0)
		if err == nil || err == unix.ENXIO {
			return nil
		}
		if (err != unix.EBUSY && err != unix.EAGAIN) || attempt >= maxAttempts {
			return fmt.Errorf("loopdev: LOOP_CLR_FD %s: %w", path, err)
		}
		backoff(attempt)
	}
}

// DetachIfBacked detaches the device at path only if it is still backed by
// the file (dev, ino). The check and the LOOP_CLR_FD go through one open
// descriptor, which keeps autoclear from freeing the device in between, so a
// device rebound to another file meanwhile is never touched.
func DetachIfBacked(path string, dev, ino uint64) error {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loopdev: detach: %w", err)
	}
	defer f.Close()
	info, err := status(int(f.Fd()), path, numberOf(path))
	if errors.Is(err, ErrNotBound) {
		return nil
	}
	if err != nil {
		return err
	}
	if info.BackingDev != dev || info.BackingInode != ino {
		return nil
	}
	return clearFD(f, path)
}

// WaitDetached waits, up to timeout, until the device at path is no longer
// backed by the file (dev, ino): autoclear runs when the last user closes it,
// which can lag an unmount slightly.
func WaitDetached(path string, dev, ino uint64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	// Autoclear usually runs within a millisecond of the last close: poll
	// fast first, then back off to 10ms.
	for wait := 250 * time.Microsecond; ; wait = min(2*wait, 10*time.Millisecond) {
		info, err := Status(path)
		if err != nil || info.BackingDev != dev || info.BackingInode != ino {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("loopdev: %s still bound to inode %d after %s: %w", path, ino, timeout, unix.EBUSY)
		}
		time.Sleep(wait)
	}
}

// SetCapacity tells the device that its backing file changed size
// (LOOP_SET_CAPACITY), so that a grown file becomes a grown device.
func SetCapacity(path string) error {
	dev, err := os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loopdev: set capacity: %w", err)
	}
	defer dev.Close()
	if err := unix.IoctlSetInt(int(dev.Fd()), unix.LOOP_SET_CAPACITY, 0); err != nil {
		return fmt.Errorf("loopdev: LOOP_SET_CAPACITY %s: %w", path, err)
	}
	return nil
}

// List returns every bound loop device, ordered by number.
func List() ([]Info, error) {
	names, err := filepath.Glob("/sys/block/loop[0-9]*")
	if err != nil {
		return nil, err
	}
	var out []Info
	for _, n := range names {
		num := numberOf(n)
		if num < 0 {
			continue
		}
		// Unbound devices have no backing_file; skip them without opening.
		backing, err := os.ReadFile(filepath.Join(n, "loop", "backing_file"))
		if err != nil {
			continue
		}
		path, err := ensureNode(num)
		if err != nil {
			continue
		}
		info, err := Status(path)
		if err != nil {
			continue // detached meanwhile
		}
		info.BackingFile = strings.TrimSuffix(string(backing), "\n")
		out = append(out, *info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out, nil
}

// ListTagged returns the bound devices whose tag starts with prefix.
func ListTagged(prefix string) ([]Info, error) {
	all, err := List()
	if err != nil {
		return nil, err
	}
	var out []Info
	for _, i := range all {
		if i.HasTagPrefix(prefix) {
			out = append(out, i)
		}
	}
	return out, nil
}

// FindByFile returns the bound devices backed by the file at path, matched by
// device and inode, never by name.
func FindByFile(path string) ([]Info, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return nil, fmt.Errorf("loopdev: stat %s: %w", path, err)
	}
	all, err := List()
	if err != nil {
		return nil, err
	}
	var out []Info
	for _, i := range all {
		if i.BackingDev == uint64(st.Dev) && i.BackingInode == st.Ino {
			out = append(out, i)
		}
	}
	return out, nil
}

func numberOf(path string) int {
	base := filepath.Base(path)
	n, err := strconv.Atoi(strings.TrimPrefix(base, "loop"))
	if err != nil || !strings.HasPrefix(base, "loop") {
		return -1
	}
	return n
}

func retryable(err error) bool {
	return errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EAGAIN) ||
		errors.Is(err, unix.ENXIO) || errors.Is(err, unix.ENOENT)
}

// backoff sleeps a jittered, growing interval, capped at 50ms.
func backoff(attempt int) {
	d := time.Duration(attempt+1) * time.Millisecond
	if d > 50*time.Millisecond {
		d = 50 * time.Millisecond
	}
	time.Sleep(d/2 + rand.N(d))
}
