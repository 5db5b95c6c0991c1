package volumes

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unsafe"

	"github.com/dindstore/dindstore/internal/fault"
	"github.com/dindstore/dindstore/loopdev"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// fitrim is FITRIM, _IOWR('X', 121, struct fstrim_range); x/sys/unix lacks it.
const fitrim = 0xc0185879

type fstrimRange struct{ start, length, minlen uint64 }

// MountImage refuses an image that a loop device is still bound to
// (ErrInUse, naming what holds it), checks the image, attaches it to a loop device tagged tag and
// mounts it at target with noatime (never noexec, nosuid or nodev: inner
// containers need them). On any failure nothing stays attached or mounted.
func MountImage(ctx context.Context, image, target string, fs FS, tag string) (*Mounted, error) {
	return MountImageWith(ctx, image, target, fs, tag, MountOptions{})
}

// MountOptions tune MountImageWith.
type MountOptions struct {
	// ReleasedClean says the caller knows the image was last unmounted by
	// a clean release: then, if its superblock agrees (ext4: valid state,
	// no journal to recover, no error), the check before the mount is
	// skipped.
	ReleasedClean bool
	// Unbound says the caller has just found no loop device bound to the
	// image and nothing using it (FindImageUse), while holding what keeps
	// its own kind from binding one (the cache's lock): the same scan is
	// then not run twice.
	Unbound bool
	// BlockSize is the logical block size the image's filesystem was made
	// for, as its owner recorded it (0: unknown, read from the superblock).
	// A superblock that says otherwise is ErrDamaged.
	BlockSize uint32
	// Backing is the image, opened read-write by the caller (who checked
	// it is the file it means): the device is bound to that inode, and the
	// checks read it, whatever image now names. Nil opens image.
	Backing *os.File
}

// MountImageWith is MountImage with options.
func MountImageWith(ctx context.Context, image, target string, fs FS, tag string, o MountOptions) (*Mounted, error) {
	// Never a second device on an image that one still holds: both would
	// write the same filesystem. Nor a check of a filesystem in use.
	if !o.Unbound {
		if use, err := FindImageUse(image, target); err != nil {
			return nil, err
		} else if use.InUse() {
			return nil, fmt.Errorf("mount %s: %w", image, &ImageInUseError{Use: use})
		}
	}
	src := image
	if o.Backing != nil {
		src = FDPath(o.Backing)
	}
	repaired, err := checkUnlessClean(ctx, src, fs, o.ReleasedClean)
	if err != nil {
		return nil, err
	}
	bs, err := ImageBlockSize(src, fs, o.BlockSize)
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", image, err)
	}
	dev, err := attach(image, o.Backing, loopdev.Params{DirectIO: true, Tag: tag, BlockSize: bs})
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", image, err)
	}
	// Once mounted, the mount holds the device; closing ours leaves it to
	// autoclear. If the mount fails, closing detaches it at once.
	defer dev.Close()
	if err := fault.Point("after-attach"); err != nil {
		return nil, err
	}
	data := ""
	switch fs {
	case Ext4:
		// The image was made sparse: its inode tables read as zeros, so the
		// kernel need not write them (which would allocate on the host).
		data = "noinit_itable"
	case XFS:
		// A clone has its source's UUID; xfs refuses a second mount of a
		// UUID unless told not to check.
		data = "nouuid"
	}
	if err := unix.Mount(dev.Path, target, string(fs), unix.MS_NOATIME, data); err != nil {
		hint := "check it with `dindstore repair KEY` (e2fsck -f)"
		if fs == XFS {
			hint = "check it with `dindstore repair KEY` (xfs_repair)"
		}
		return nil, fmt.Errorf("mount %s (%s on %s) at %s: %w; if the filesystem is damaged, %s", image, fs, dev.Path,
			target, err, hint)
	}
	return &Mounted{Target: target, Device: dev.Path, DirectIO: dev.DirectIO, Repaired: repaired}, nil
}

// attach binds backing (or, when nil, the file at image) to a loop device.
// The device keeps a reference to the open file it is given, so it gets a
// fresh open of backing's inode, never backing itself: a lock the caller
// holds on backing (cache's image lock) must end with the caller, not stay
// with a device that outlives it.
func attach(image string, backing *os.File, p loopdev.Params) (*loopdev.Device, error) {
	if backing == nil {
		return loopdev.Attach(image, p)
	}
	f, err := os.OpenFile(FDPath(backing), os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("reopen %s for its loop device: %w", image, err)
	}
	defer f.Close()
	return loopdev.AttachFile(f, p)
}

// checkUnlessClean runs CheckImage unless the image was released cleanly
// and its superblock says so too.
func checkUnlessClean(ctx context.Context, image string, fs FS, releasedClean bool) (repaired string, err error) {
	if releasedClean && fs == Ext4 {
		if st, err := ReadStats(image, fs); err == nil && st.Clean {
			return "", nil
		}
	}
	return CheckImage(ctx, image, fs)
}

// Watch takes a descriptor on the filesystem mounted at m.Target, for
// Health: syncfs reports write-back errors only since the descriptor was
// opened, so it is taken right after the mount. The descriptor is
// close-on-exec; Unmount closes it.
func (m *Mounted) Watch() error {
	if m.Device == "" {
		return nil // see Health
	}
	f, err := os.OpenFile(m.Target, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("watch %s: %w", m.Target, err)
	}
	m.watch = f
	return nil
}

// Health checks a mounted loop filesystem before its release: syncfs must
// succeed (a write the host could not take, such as ENOSPC under a sparse
// image, fails it; so does a shut-down xfs), and an ext4 must not have
// counted errors (/sys/fs/ext4/DEV/errors_count). A damaged filesystem is
// ErrDamaged with the reason.
func (m *Mounted) Health() error {
	if m.Device == "" {
		return nil // a bind mount: its syncfs would be the host filesystem's
	}
	if m.watch == nil {
		if err := m.Watch(); err != nil {
			return err
		}
	}
	if err := unix.Syncfs(int(m.watch.Fd())); err != nil {
		return fmt.Errorf("%w: %s lost writes (syncfs: %w); the host filesystem under it may have been full",
			ErrDamaged, m.Target, err)
	}
	b, err := os.ReadFile(filepath.Join("/sys/fs/ext4", filepath.Base(m.Device), "errors_count"))
	if n := strings.TrimSpace(string(b)); err == nil && n != "0" {
		return fmt.Errorf("%w: ext4 on %s (%s) counted %s errors", ErrDamaged, m.Device, m.Target, n)
	}
	return nil
}

// CloseWatch drops the descriptor Watch took; Unmount needs it gone.
func (m *Mounted) CloseWatch() {
	if m.watch != nil {
		_ = m.watch.Close()
		m.watch = nil
	}
}

// Bind bind-mounts the directory src at target.
func Bind(src, target string) (*Mounted, error) {
	if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
		return nil, fmt.Errorf("bind mount %s at %s: %w", src, target, err)
	}
	return &Mounted{Target: target}, nil
}

// IsMounted reports whether target is a mount point.
func IsMounted(target string) (bool, error) {
	return mountinfo.Mounted(target)
}

// Trim syncs the filesystem mounted at target and discards its free blocks
// (FITRIM), so that a loop image gives the host back what was deleted inside
// it. It returns the bytes the filesystem reports as trimmed.
func Trim(target string) (uint64, error) {
	d, err := os.OpenFile(target, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("trim %s: %w", target, err)
	}
	defer d.Close()
	// ext4 trims only blocks whose freeing is committed: sync first, or
	// what was deleted just before (an inner daemon's last cleanup) stays.
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return 0, fmt.Errorf("trim %s: syncfs: %w", target, err)
	}
	r := fstrimRange{length: ^uint64(0)}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, d.Fd(), fitrim, uintptr(unsafe.Pointer(&r)))
	if errno != 0 {
		return 0, fmt.Errorf("trim %s (FITRIM): %w", target, errno)
	}
	return r.length, nil
}

// Unmount trims and unmounts whatever is mounted at target and below it,
// submounts first (an inner daemon that died may leave its overlay mounts
// behind), and, for a loop device, waits until autoclear has detached it.
// Nothing mounted there is not an error.
func Unmount(target string) error { return unmount(target, true) }

// UnmountBind unmounts a bind mount of a mounted cache (and whatever is
// mounted below it): no trim, and the loop device stays with the cache's own
// mount.
func UnmountBind(target string) error { return unmountTree(target) }

// UnmountNoTrim is Unmount without the trim, for a caller that decided
// itself whether the filesystem needs one (see Trim).
func UnmountNoTrim(target string) error { return unmount(target, false) }

func unmount(target string, trim bool) error {
	infos, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(target))
	if err != nil {
		return fmt.Errorf("unmount %s: read mountinfo: %w", target, err)
	}
	var loop *loopdev.Info
	if len(infos) > 0 {
		top := infos[len(infos)-1]
		if strings.HasPrefix(top.Source, "/dev/loop") {
			loop, _ = loopdev.Status(top.Source)
		}
		if trim && (top.FSType == string(Ext4) || top.FSType == string(XFS)) {
			_, _ = Trim(target) // best effort: a failed trim loses no data
		}
	}
	if err := unmountTree(target); err != nil {
		return err
	}
	if loop == nil {
		return nil
	}
	return releaseLoop(loop)
}

// releaseLoop waits for autoclear to detach a device we mounted, and detaches
// it when another holder of the device kept autoclear from running.
func releaseLoop(loop *loopdev.Info) error {
	if loopdev.WaitDetached(loop.Path, loop.BackingDev, loop.BackingInode, 2*time.Second) == nil {
		return nil
	}
	if err := loopdev.DetachIfBacked(loop.Path, loop.BackingDev, loop.BackingInode); err != nil {
		return err
	}
	return loopdev.WaitDetached(loop.Path, loop.BackingDev, loop.BackingInode, 5*time.Second)
}

// unmountTree unmounts target and every mount below it, deepest first. It
// never detaches lazily (MNT_DETACH): a filesystem still in use must stay
// visible and fail the unmount, or the next holder would mount the same
// image a second time while the first mount still writes to it. EBUSY is
// retried briefly; symlinks are not followed.
func unmountTree(target string) error {
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(target))
	if err != nil {
		return fmt.Errorf("unmount %s: read mountinfo: %w", target, err)
	}
	sort.SliceStable(mounts, func(i, j int) bool {
		if len(mounts[i].Mountpoint) != len(mounts[j].Mountpoint) {
			return len(mounts[i].Mountpoint) > len(mounts[j].Mountpoint)
		}
		return mounts[i].ID > mounts[j].ID // stacked mounts: the top one first
	})
	for _, m := range mounts {
		if err := unmountOne(m.Mountpoint); err != nil {
			return err
		}
	}
	return nil
}

// unmountAttempts bounds the EBUSY retries of one unmount (about 2 s).
const unmountAttempts = 40

func unmountOne(path string) error {
	for attempt := 0; ; attempt++ {
		err := unix.Unmount(path, unix.UMOUNT_NOFOLLOW)
		switch {
		case err == nil, errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil // unmounted, or no longer a mount point
		case !errors.Is(err, unix.EBUSY) || attempt >= unmountAttempts:
			return fmt.Errorf("unmount %s: %w (is a process still using it? see `fuser -vm %s`)", path, err, path)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
