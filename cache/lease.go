package cache

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/dindstore/dindstore/dockerd"
	"github.com/dindstore/dindstore/internal/fault"
	"github.com/dindstore/dindstore/procscan"
	"github.com/dindstore/dindstore/proctree"
	"github.com/dindstore/dindstore/volumes"
	"golang.org/x/sys/unix"
)

// Lease is a cache held by this process: locked, mounted, and recorded as
// ours. Release ends it.
type Lease struct {
	root     *Root
	lock     *lock
	record   *Record
	mount    *volumes.Mounted
	image    *os.File // a loop image, held (holdImage) for the whole lease
	stale    *Owner
	repaired []Finding
	driver   string
	owner    *Owner
	group    *proctree.Group
	released bool
}

// AcquireOptions are the choices a holder makes when it takes a cache.
type AcquireOptions struct {
	// KillUsers ends processes that still use the cache's image but were
	// never part of a lease; without it they are named (ErrInUse).
	KillUsers bool
	// Overcommit skips admission: the cache is mounted even when the host
	// cannot hold what the caches in use may still write.
	Overcommit bool
	// KeepFree is the admission floor, a fraction of the host filesystem
	// that must stay free (0: DefaultKeepFree).
	KeepFree float64
	// Promised names caches promised to users on their way (a provisioned
	// volume whose pod is being scheduled to it): admission counts them
	// as in use, so a newcomer does not take their room.
	Promised []string
}

// Group is the process group the lease's payload must start in (nil when
// the host has no cgroup v2 hierarchy for it): see proctree.
func (l *Lease) Group() *proctree.Group { return l.group }

// SetContainer records in the owner record the container this lease lives
// for, and when it started.
func (l *Lease) SetContainer(id string, started time.Time) error {
	l.owner.ContainerID, l.owner.ContainerStarted = id, started.UTC()
	return l.root.writeOwner(l.record.Key, l.owner)
}

// ImageStore is the image store the cache holds ("" while none is known).
func (l *Lease) ImageStore() string { return l.record.ImageStore }

// SetImageStore records the image store a daemon is started with on a
// cache that had none yet.
func (l *Lease) SetImageStore(store string) error {
	if l.record.ImageStore == store {
		return nil
	}
	l.record.ImageStore = store
	return l.root.updateRecord(l.record.Key, func(rec *Record) { rec.ImageStore = store })
}

// SetOwner gives the mounted cache's root directory to uid:gid (a rootless
// daemon's user) and records it, once. A cache given to another user, or
// one a root daemon already filled, is refused (ErrOwnerMismatch, naming
// both): its files belong to other ids than the daemon would run as.
func (l *Lease) SetOwner(uid, gid int) error {
	want := fmt.Sprintf("%d:%d", uid, gid)
	switch have := l.record.Owner; {
	case have == want:
		return nil
	case have != "":
		return fmt.Errorf("%w: cache %q was made for %s, not %s: use another key for that user",
			ErrOwnerMismatch, l.record.Key, have, want)
	case l.holdsData():
		return fmt.Errorf("%w: cache %q was filled by a daemon running as root, not %s: use another key for that user",
			ErrOwnerMismatch, l.record.Key, want)
	}
	var st unix.Stat_t
	if err := unix.Lstat(l.mount.Target, &st); err != nil {
		return fmt.Errorf("give %s to %s: %w", l.mount.Target, want, err)
	}
	if err := os.Lchown(l.mount.Target, uid, gid); err != nil {
		return fmt.Errorf("give %s to %s: %w", l.mount.Target, want, err)
	}
	if err := l.root.updateRecord(l.record.Key, func(rec *Record) { rec.Owner = want }); err != nil {
		// Unrecorded, the chown would go unnoticed: give the root back.
		return errors.Join(err, os.Lchown(l.mount.Target, int(st.Uid), int(st.Gid)))
	}
	l.record.Owner = want
	return nil
}

// holdsData says whether the mounted cache has anything beyond what a
// fresh filesystem and dindstore put there.
func (l *Lease) holdsData() bool {
	entries, _ := os.ReadDir(l.mount.Target)
	for _, e := range entries {
		if e.Name() != "lost+found" && e.Name() != ".dindstore-containerd" {
			return true
		}
	}
	return false
}

// Reset empties the mounted cache (all but lost+found) and forgets its
// image store and owner, for starting over with another one.
func (l *Lease) Reset() error {
	entries, err := os.ReadDir(l.mount.Target)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() == "lost+found" {
			continue
		}
		if err := os.RemoveAll(filepath.Join(l.mount.Target, e.Name())); err != nil {
			return fmt.Errorf("reset cache %q: %w", l.record.Key, err)
		}
	}
	l.record.ImageStore, l.record.Owner = "", ""
	return l.root.updateRecord(l.record.Key, func(rec *Record) { rec.ImageStore, rec.Owner = "", "" })
}

// Key is the cache's key.
func (l *Lease) Key() string { return l.record.Key }

// StorageDriver is the driver the inner daemon must use on this cache
// (overlay2, or vfs for a vfs cache), as probed on the mount.
func (l *Lease) StorageDriver() string { return l.driver }

// TookOver is the owner record of a holder that died holding the cache, when
// this lease took the cache over from it; nil otherwise.
func (l *Lease) TookOver() *Owner { return l.stale }

// Repaired lists what had to be cleared before the cache could be mounted
// (a dead holder's mount, loop device or owner record).
func (l *Lease) Repaired() []Finding { return l.repaired }

// Record returns the cache's record as it was when the lease began.
func (l *Lease) Record() *Record { return l.record }

// MountPath is where the cache is mounted: the inner /var/lib/docker.
func (l *Lease) MountPath() string { return l.mount.Target }

// Device is the loop device of a loop cache, empty for other kinds.
func (l *Lease) Device() string { return l.mount.Device }

// DirectIO reports whether the loop device does direct I/O.
func (l *Lease) DirectIO() bool { return l.mount.DirectIO }

// Holder modes, as recorded in owner records.
const (
	ModeRun     = "run"
	ModePrepare = "prepare"
	ModeLaunch  = "launch"
	ModeWarm    = "warm"
	// ModePublish is a lease bound at another path for its user (a CSI
	// NodePublishVolume; see handoff.Publish).
	ModePublish = "publish"
)

// Acquire takes the lock of an existing cache without waiting (ErrLocked,
// naming the holder, when another process has it), records this process as
// its owner (holding it in mode, with command), and mounts it. A mount left
// behind by a holder that died is torn down first. On failure nothing stays
// locked or mounted.
func (r *Root) Acquire(ctx context.Context, key, mode string, command []string, opts AcquireOptions) (_ *Lease, retErr error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	rec, err := r.readRecord(key)
	if err != nil {
		return nil, err
	}
	if err := rec.usable(); err != nil {
		return nil, err
	}
	l, err := r.waitLock(ctx, key, false)
	if err != nil {
		return nil, err
	}
	lease := &Lease{root: r, lock: l, record: rec}
	defer func() {
		if retErr != nil {
			lease.endGroup(ctx)
			_ = r.removeOwner(key)
			l.release()
		}
	}()
	if err := lease.takeOver(ctx, opts); err != nil {
		return nil, err
	}
	if err := lease.own(mode, command); err != nil {
		return nil, err
	}
	if err := r.admit(rec, opts); err != nil {
		return nil, err
	}
	if err := r.notPulled(rec); err != nil {
		return nil, err
	}
	if err := lease.mountAndPin(ctx); err != nil {
		return nil, err
	}
	return lease, nil
}

// takeOver clears what an earlier holder that died left (its mount, loop
// device, owner record), remembering who it was.
func (l *Lease) takeOver(ctx context.Context, opts AcquireOptions) error {
	key := l.record.Key
	l.stale, _ = l.root.readOwner(key)
	var err error
	if l.repaired, err = l.root.repairLocked(ctx, key, repairOpts{killUsers: opts.KillUsers}); err == nil {
		return nil
	}
	if o := l.stale; o != nil && o.ContainerID != "" {
		return fmt.Errorf("clear what an earlier holder of %q left: %w; its container %s may still use "+
			"the cache (its holder, pid %d, is gone): stop it (docker rm -f %s) and try again",
			key, err, o.ContainerID, o.PID, o.ContainerID)
	}
	return fmt.Errorf("clear what an earlier holder of %q left: %w", key, err)
}

// own writes this process's owner record, naming the lease's process
// group, and then makes the group: a holder that dies in between leaves a
// record naming a group that does not exist, never a group nobody knows.
func (l *Lease) own(mode string, command []string) error {
	owner, err := CurrentOwner(os.Getpid(), command)
	if err != nil {
		return fmt.Errorf("describe this process as owner: %w", err)
	}
	owner.Mode = mode
	name := groupName(l.root.path, l.record.Key, owner)
	if path, err := proctree.PathFor(name); err == nil {
		owner.Group = path
	}
	l.owner = owner
	if err := l.root.writeOwner(l.record.Key, owner); err != nil {
		return err
	}
	if owner.Group == "" {
		return nil
	}
	if l.group, err = proctree.New(name); err != nil {
		// A read-only cgroup hierarchy (dindstore itself in a container):
		// the lease goes on without a group, as on a host without one.
		fmt.Fprintf(os.Stderr, "dindstore: WARNING: cache %s gets no process group (%v): a dead lease's "+
			"processes will be found only through what they hold\n", l.record.Key, err)
		owner.Group = ""
		return l.root.writeOwner(l.record.Key, owner)
	}
	return nil
}

// groupName names a lease's process group: the root (hashed), the key, the
// holder's pid and start time, so that no two leases share one.
func groupName(root, key string, o *Owner) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(root))
	return fmt.Sprintf("%08x.%s.%d.%d", h.Sum32(), key, o.PID, o.StartTime)
}

// endGroup ends what is left of the lease's processes and removes the
// group. It is the last word on the lease's tree: nothing of it may go on
// using the cache once it is released.
func (l *Lease) endGroup(ctx context.Context) error {
	if l.group == nil {
		return nil
	}
	if _, err := endProcesses(ctx, l.group); err != nil {
		return fmt.Errorf("end the processes left by cache %q's command: %w", l.record.Key, err)
	}
	return nil
}

// mountAndPin mounts the cache, pins its storage driver and records the
// use; on failure nothing stays mounted.
func (l *Lease) mountAndPin(ctx context.Context) error {
	r, key := l.root, l.record.Key
	var err error
	if l.mount, l.image, err = r.mount(ctx, l.record); err != nil {
		return fmt.Errorf("mount cache %q: %w", key, err)
	}
	var probed *ProbeStamp
	if l.driver, probed, err = r.pinDriver(l.record, l.mount.Target); err == nil {
		err = fault.Point("after-mount")
	}
	if err == nil {
		err = r.recordUse(key, l.driver, probed, l.mount.Repaired)
	}
	if err == nil {
		err = l.mount.Watch()
	}
	if err != nil {
		l.mount.CloseWatch()
		err = errors.Join(err, volumes.Unmount(l.mount.Target))
		l.closeImage()
	}
	return err
}

// MarkIncomplete records that the holder starts filling the cache (a
// warm): until MarkComplete, the cache is StateIncomplete once its holder
// is gone, and never served as a warm cache. reason says who started what.
func (l *Lease) MarkIncomplete(reason string) error {
	p := &Problem{Reason: reason, At: time.Now().UTC()}
	return l.root.updateRecord(l.record.Key, func(rec *Record) { rec.Incomplete = p })
}

// MarkComplete records that the fill MarkIncomplete announced completed.
func (l *Lease) MarkComplete() error {
	return l.root.updateRecord(l.record.Key, func(rec *Record) { rec.Incomplete = nil })
}

// closeImage lets go of the lease's hold on its image (see holdImage).
func (l *Lease) closeImage() {
	if l.image != nil {
		_ = l.image.Close()
		l.image = nil
	}
}

// RepairedAtMount is what the check before the mount repaired, "" when
// it found nothing to repair.
func (l *Lease) RepairedAtMount() string { return l.mount.Repaired }

// mount mounts the cache at its mount point, which the caller has cleared
// (repairLocked). Mount point and data directory are pinned by descriptor
// (see pinDir); a loop image is held (holdImage), and the caller keeps the
// returned hold for as long as the cache stays mounted.
func (r *Root) mount(ctx context.Context, rec *Record) (*volumes.Mounted, *os.File, error) {
	target := r.MountPath(rec.Key)
	if err := os.Mkdir(target, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, nil, err
	}
	dir, pinned, err := r.pinDir(target)
	if err != nil {
		return nil, nil, err
	}
	defer dir.Close()
	m, image, err := r.mountAt(ctx, rec, pinned)
	if err != nil {
		return nil, nil, fmt.Errorf("at %s: %w", target, err)
	}
	m.Target = target
	return m, image, nil
}

// mountAt mounts the cache's backing at the pinned target. Its callers
// cleared the key first (repairLocked), which confirmed that no device is
// bound to the image; the image's own lock, taken first, keeps any other
// root from binding one meanwhile. The device gets the block size the
// filesystem was made for (Record.BlockSize).
func (r *Root) mountAt(ctx context.Context, rec *Record, target string) (*volumes.Mounted, *os.File, error) {
	if rec.Kind == volumes.Loop {
		image, err := r.holdImage(rec.Key)
		if errors.Is(err, ErrImageMissing) {
			return nil, nil, r.recordDamage(rec.Key, err)
		}
		if err != nil {
			return nil, nil, err
		}
		if err := r.checkImage(image, rec); err != nil {
			image.Close()
			return nil, nil, err
		}
		m, err := volumes.MountImageWith(ctx, r.imagePath(rec.Key), target, rec.FS, volumes.LoopTag(TagPrefix, rec.Key),
			volumes.MountOptions{ReleasedClean: rec.ReleasedClean, Unbound: true, BlockSize: rec.BlockSize, Backing: image})
		if err != nil {
			image.Close()
			return nil, nil, err
		}
		return m, image, nil
	}
	src, pinned, err := r.pinDir(r.dataPath(rec.Key))
	if err != nil {
		return nil, nil, err
	}
	defer src.Close()
	m, err := volumes.Bind(pinned, target)
	return m, nil, err
}

// checkImage checks the held image against rec (checkAgainstRecord). A
// grow cut short is finished first, as recover would (rec then holds the
// cap it settled on); an image changed behind dindstore's back is marked
// damaged.
func (r *Root) checkImage(image *os.File, rec *Record) error {
	err := r.checkAgainstRecord(image, rec)
	if errors.Is(err, errGrowCut) {
		if f := r.finishGrow(rec, image, false); f.Err != nil {
			return fmt.Errorf("finish the grow of %q that was cut short: %w", rec.Key, f.Err)
		}
		fresh, rerr := r.readRecord(rec.Key)
		if rerr != nil {
			return rerr
		}
		*rec = *fresh
		err = r.checkAgainstRecord(image, rec)
	}
	if errors.Is(err, ErrDamaged) {
		return r.recordDamage(rec.Key, err)
	}
	return err
}

// Release ends the lease: what is left of the lease's processes is ended,
// the filesystem's health is checked (syncfs through the descriptor taken at
// mount, the filesystem's error count), the cache is unmounted (trimming a
// loop image first, so the host gets back what was deleted inside), its
// record updated, and the lock dropped. The lock is dropped even when
// something failed; the record says what (damaged, release-failed), and the
// error (ErrDamaged, ErrInUse) names it. Releasing twice does nothing.
func (l *Lease) Release(ctx context.Context) error {
	if l.released {
		return nil
	}
	l.released = true
	key := l.record.Key
	treeErr := l.endGroup(ctx)
	usage, _ := statUsage(l.mount.Target) // before the unmount; best effort
	store := dockerd.DetectStore(l.mount.Target)
	damage := l.mount.Health()
	l.mount.CloseWatch()
	if damage == nil && l.needsTrim(usage) {
		_, _ = volumes.Trim(l.mount.Target) // best effort: a failed trim loses no data
	}
	unmountErr := volumes.UnmountNoTrim(l.mount.Target)
	if unmountErr == nil && treeErr == nil {
		if damage == nil {
			damage = l.superblockErrors()
		}
	}
	failed := errors.Join(treeErr, unmountErr)
	var pids []int
	if unmountErr != nil {
		pids, failed = l.describeUsers(failed)
	}
	now := time.Now().UTC()
	var err error
	if damage != nil {
		err = l.root.markDamaged(key) // first: it needs no room
	}
	err = errors.Join(err, l.root.updateRecord(key, func(rec *Record) {
		rec.LastUsed = now
		if usage != nil && rec.Kind == volumes.Loop {
			rec.Usage = usage
		}
		if rec.ImageStore == "" {
			rec.ImageStore = store // what the daemon really used
		}
		if damage != nil {
			rec.Damaged = problem(damage, nil)
		}
		rec.ReleasedClean = damage == nil && failed == nil
		rec.ReleaseFailed = problem(failed, pids)
	}))
	if failed == nil {
		// A failed release keeps the owner record: it names the lease's
		// group, which the next holder or recover must end.
		err = errors.Join(err, l.root.removeOwner(key))
	}
	l.closeImage()
	err = errors.Join(damage, failed, err, l.lock.release())
	if err != nil {
		return fmt.Errorf("release cache %q: %w", key, err)
	}
	return nil
}

// Reclaim goal: after a release, a loop image takes at most
// trimSlack × used + trimFloor on the host.
const (
	trimSlack = 1.1
	trimFloor = 16 << 20
)

// needsTrim tells whether the image takes more on the host than the
// reclaim goal allows for what its filesystem uses: only then is the
// (whole-filesystem) FITRIM worth its cost. Without figures, trim.
func (l *Lease) needsTrim(usage *Usage) bool {
	if l.record.Kind != volumes.Loop {
		return false
	}
	_, allocated, _, err := fileSizes(l.root.imagePath(l.record.Key))
	if err != nil || usage == nil {
		return true
	}
	return float64(allocated) > trimSlack*float64(usage.UsedBytes)+trimFloor
}

// superblockErrors reads the released image's superblock for errors the
// filesystem recorded (ext4) but that the live checks did not see.
func (l *Lease) superblockErrors() error {
	if l.record.Kind != volumes.Loop {
		return nil
	}
	if l.image == nil {
		return nil
	}
	st, err := volumes.ReadStats(volumes.FDPath(l.image), l.record.FS) // the held image, never a name
	if err != nil || st.Errors == "" {
		return nil
	}
	return fmt.Errorf("%w: %s", volumes.ErrDamaged, st.Errors)
}

// describeUsers adds to a failed unmount what still uses the cache (see
// findUse), and returns the pids of those processes.
func (l *Lease) describeUsers(err error) ([]int, error) {
	use, uerr := l.root.findUse(l.record.Key)
	if uerr != nil || len(use.Users) == 0 {
		return nil, err
	}
	return processPIDs(use), fmt.Errorf("%w: %w", err, &volumes.ImageInUseError{Use: use})
}

// processPIDs lists the pids of an image's users that are processes (not
// the mounts in dindstore's own namespace, which procscan gives pid 0).
func processPIDs(u *volumes.ImageUse) []int {
	return slices.DeleteFunc(procscan.PIDs(u.Users), func(pid int) bool { return pid <= 0 })
}

// Health checks the mounted cache now: write-back errors since the mount
// (syncfs) and errors its filesystem counted; nil when healthy.
func (l *Lease) Health() error { return l.mount.Health() }
