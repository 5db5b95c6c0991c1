package cache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dindstore/dindstore/procscan"
	"github.com/dindstore/dindstore/proctree"
	"github.com/dindstore/dindstore/volumes"
	"github.com/moby/sys/mountinfo"
)

// What recover finds.
const (
	FindInUse        = "in-use"        // a live holder has the cache: adopted as is
	FindStaleOwner   = "stale-owner"   // an owner record whose holder is gone
	FindStaleMount   = "stale-mount"   // a mount of an unheld cache
	FindOrphanLoop   = "orphan-loop"   // a loop device on an unheld cache's image
	FindHalfCreated  = "half-created"  // data of a cache whose record was never written
	FindMissingImage = "missing-image" // a loop cache's record without its image
	FindTempFile     = "temp-file"     // a temporary file left by a write or probe that died
	FindGrowCut      = "grow-cut"      // a grow that died between extending the file and recording the cap
	FindPromotionCut = "commit-cut"    // a commit of a clone into its warm cache, cut short
	FindDeadLease    = "dead-lease"    // processes of a lease whose holder died
	FindOrphaned     = "orphaned"      // processes outside any live lease that still use the image
	FindDamaged      = "damaged"       // a cache a release found damaged: kept for `dindstore repair`
	FindAbandoned    = "abandoned"     // a per-job cache whose holder died before its job ended
)

// Finding is one thing Recover found, and what it did about it.
type Finding struct {
	Key  string `json:"key,omitempty"`
	What string `json:"what"`
	Path string `json:"path"`
	// Action is what was done ("unmounted", "detached", "removed", "kept"),
	// or would be done in a dry run.
	Action string `json:"action"`
	// Note says more (who holds the cache, who held it).
	Note string `json:"note,omitempty"`
	// Err is set when the action failed (marshalled as "error").
	Err error `json:"-"`
}

// String is the finding as one log line: key, what, path, action, the
// note in parentheses and the failure, each only when there is one.
func (f Finding) String() string {
	s := fmt.Sprintf("%s %s: %s", f.What, f.Path, f.Action)
	if f.Key != "" {
		s = f.Key + " " + s
	}
	if f.Note != "" {
		s += " (" + f.Note + ")"
	}
	if f.Err != nil {
		s += ": FAILED: " + f.Err.Error()
	}
	return s
}

// tempAge is how old a temporary file must be before recover removes it:
// younger ones may belong to a write in progress.
const tempAge = 10 * time.Minute

// Recover rebuilds the picture from disk alone (records, mountinfo, loop
// device status, lock files and owner records) and repairs it: a cache with
// a live holder is left as it is; an unheld cache loses its stale owner
// record, mounts and loop devices; data without a record (a create that
// died) is removed. A cache's data is never removed because its holder died.
// With dryRun nothing is changed and the findings say what would be done.
func (r *Root) Recover(ctx context.Context, dryRun bool) ([]Finding, error) {
	out := append(r.recoverPromotions(ctx, dryRun), r.recoverPulls(dryRun)...)
	keys, err := r.knownKeys()
	if err != nil {
		return nil, err
	}
	for _, key := range keys {
		out = append(out, r.recoverKey(ctx, key, dryRun)...)
	}
	out = append(out, r.recoverTemp(dryRun)...)
	if dryRun {
		wouldBe(out)
	}
	return out, nil
}

// wouldBe rewords what a dry run found as what would be done ("would be
// removed"), where the finding says what was done.
func wouldBe(found []Finding) {
	for i, f := range found {
		switch {
		case f.Action == "kept", f.Action == "none", f.Action == "listed", strings.HasPrefix(f.Action, "would be "):
		default:
			found[i].Action = "would be " + f.Action
		}
	}
}

// knownKeys lists every key that has anything below the root.
func (r *Root) knownKeys() ([]string, error) {
	seen := map[string]bool{}
	for _, d := range []string{"records", "locks", "images", "data", "mounts"} {
		entries, err := os.ReadDir(filepath.Join(r.path, d))
		if err != nil {
			return nil, fmt.Errorf("recover: %w", err)
		}
		for _, e := range entries {
			key := e.Name()
			// (".reaper": the guard's marker of earlier versions, now KEY.busy@PID)
			for _, suffix := range []string{".json", ".lock", ".owner", ".damaged", ".reaper", ".img.tmp", ".img"} {
				key = strings.TrimSuffix(key, suffix)
			}
			if ValidateKey(key) == nil {
				seen[key] = true
			}
		}
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys, nil
}

// recoverKey repairs one key under its lock; a held key is only reported.
func (r *Root) recoverKey(ctx context.Context, key string, dryRun bool) []Finding {
	l, err := r.lockBusy(ctx, key)
	var held *HeldError
	if errors.As(err, &held) {
		return []Finding{{Key: key, What: FindInUse, Path: r.MountPath(key),
			Action: "kept", Note: held.Error()}}
	}
	if err != nil {
		return []Finding{{Key: key, What: "lock", Path: r.lockPath(key), Action: "none", Err: err}}
	}
	defer l.release()
	return r.recoverLocked(ctx, key, dryRun)
}

// recoverLocked is recoverKey for a key whose lock the caller holds.
func (r *Root) recoverLocked(ctx context.Context, key string, dryRun bool) []Finding {
	findings, _ := r.repairLocked(ctx, key, repairOpts{dryRun: dryRun}) // errors are in the findings
	rec, err := r.readRecord(key)
	switch {
	case errors.Is(err, ErrNotFound):
		findings = append(findings, r.removeHalfCreated(ctx, key, dryRun)...)
	case err == nil && rec.Kind == volumes.Loop:
		findings = append(findings, r.checkImageSize(rec, dryRun)...)
	}
	if err == nil && rec.Damaged != nil {
		findings = append(findings, Finding{Key: key, What: FindDamaged, Path: r.recordPath(key), Action: "kept",
			Note: rec.Damaged.Reason + "; check it with `dindstore repair " + key + "`"})
	}
	return findings
}

// checkImageSize finds a loop image whose size disagrees with its record.
// Longer than its cap, it is a grow cut short: if the filesystem was
// resized already, the grow is completed (the record takes the new cap);
// if not, it is undone (the file gets its recorded size back). Shorter, or
// holding a filesystem larger than itself, it was changed behind
// dindstore's back: marked damaged, never "undone".
func (r *Root) checkImageSize(rec *Record, dryRun bool) []Finding {
	path := r.imagePath(rec.Key)
	image, err := r.openImage(rec.Key)
	if errors.Is(err, ErrImageMissing) {
		return []Finding{r.damageFinding(rec, path, err, dryRun)}
	}
	if err != nil {
		return []Finding{{Key: rec.Key, What: FindGrowCut, Path: path, Action: "none", Err: err}}
	}
	defer image.Close()
	err = r.checkAgainstRecord(image, rec)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrDamaged):
		return []Finding{r.damageFinding(rec, path, err, dryRun)}
	case !errors.Is(err, errGrowCut):
		return []Finding{{Key: rec.Key, What: FindGrowCut, Path: path, Action: "none", Err: err}}
	}
	return []Finding{r.finishGrow(rec, image, dryRun)}
}

// finishGrow completes or undoes a grow of rec that was cut short.
func (r *Root) finishGrow(rec *Record, image *os.File, dryRun bool) Finding {
	f := Finding{Key: rec.Key, What: FindGrowCut, Path: image.Name()}
	stats, err := volumes.ReadStats(volumes.FDPath(image), rec.FS)
	if err != nil {
		f.Action, f.Err = "none", err
		return f
	}
	fi, err := image.Stat()
	if err != nil {
		f.Action, f.Err = "none", err
		return f
	}
	fsBytes := stats.SizeBytes
	var do func() error
	if fsBytes > rec.CapBytes {
		f.Action, f.Note = "completed", fmt.Sprintf("cap %d -> %d", rec.CapBytes, fsBytes)
		do = func() error { return r.updateRecord(rec.Key, func(rec *Record) { rec.CapBytes = fsBytes }) }
	} else {
		f.Action, f.Note = "undone", fmt.Sprintf("image %d -> %d bytes", fi.Size(), rec.CapBytes)
		do = func() error { return image.Truncate(rec.CapBytes) }
	}
	if dryRun {
		f.Action = "would be " + f.Action
	} else if err := do(); err != nil {
		f.Err = err
	}
	return f
}

// damageFinding reports (and, unless dryRun, records) an image that
// disagrees with its record.
func (r *Root) damageFinding(rec *Record, path string, damage error, dryRun bool) Finding {
	what := FindDamaged
	if errors.Is(damage, ErrImageMissing) {
		what = FindMissingImage
	}
	f := Finding{Key: rec.Key, What: what, Path: path, Action: "marked damaged", Note: damage.Error()}
	if rec.Damaged != nil {
		f.Action, f.Note = "kept", rec.Damaged.Reason // marked already: keep the first reason
		return f
	}
	if dryRun {
		f.Action = "would be marked damaged"
	} else {
		f.Err = r.noteDamage(rec.Key, damage)
	}
	return f
}

// repairOpts says how far repairLocked may go.
type repairOpts struct {
	// dryRun changes nothing: the findings say what would be done.
	dryRun bool
	// killUsers ends processes that use the image but were never part of
	// a lease; without it they are named and the repair fails (ErrInUse).
	killUsers bool
}

// endWait bounds how long ending a dead lease's processes (or foreign
// users) may take before the repair gives up.
const endWait = 15 * time.Second

// repairLocked clears what an unheld cache should not have: the processes
// of a lease whose holder died, a stale owner record, mounts, loop devices
// on its image. A process that uses the image but was never part of a
// lease stops it (ErrInUse, naming the process) unless o.killUsers. The
// caller holds the lock. It is the cheap check every state-changing
// operation makes first; the error is the first repair that failed.
func (r *Root) repairLocked(ctx context.Context, key string, o repairOpts) (out []Finding, firstErr error) {
	act := func(f Finding, do func() (string, error)) {
		if o.dryRun {
			f.Action = "would be " + f.Action
		} else if note, err := do(); err != nil {
			f.Err = err
			if firstErr == nil {
				firstErr = err
			}
		} else if note != "" {
			f.Note = note
		}
		out = append(out, f)
	}
	owner, hasOwner := r.endDeadLease(ctx, key, act)
	if firstErr != nil {
		return out, firstErr // the dead lease's processes may still run: touch nothing
	}
	use, err := r.repairUsers(ctx, key, o, act)
	if err != nil && firstErr == nil {
		firstErr = err
	}
	if firstErr != nil {
		// Something outside the lease still uses it: touch nothing, and keep
		// the owner record, which names the container to stop, if any.
		return out, firstErr
	}
	if hasOwner {
		f := Finding{Key: key, What: FindStaleOwner, Path: r.ownerPath(key), Action: "removed"}
		if owner != nil {
			f.Note = fmt.Sprintf("holder pid %d (%s) is gone", owner.PID, owner.CommandLine())
		}
		act(f, func() (string, error) { return "", r.removeOwner(key) })
		if !o.dryRun && firstErr == nil {
			r.markAbandoned(key, owner)
		}
	}
	unmounted := false
	for _, p := range []string{r.MountPath(key), r.dataPath(key)} {
		if mounted, _ := mountinfo.GetMounts(mountinfo.PrefixFilter(p)); len(mounted) > 0 {
			unmounted = true
			act(Finding{Key: key, What: FindStaleMount, Path: p, Action: "unmounted"},
				func() (string, error) { return "", volumes.Unmount(p) })
		}
	}
	r.detachOrphans(key, use, unmounted, act)
	return out, firstErr
}

// detachOrphans detaches the loop devices left on key's image. The scan of
// repairUsers is reused when it found none and nothing was unmounted since;
// otherwise the devices are listed again. A list that fails is an error:
// the caller could not confirm that the image is unbound.
func (r *Root) detachOrphans(key string, use *volumes.ImageUse, unmounted bool, act func(Finding, func() (string, error))) {
	if use != nil && len(use.Devices) == 0 && !unmounted {
		return
	}
	devs, err := volumes.ImageDevices(r.imagePath(key))
	if errors.Is(err, os.ErrNotExist) {
		return // a dir or vfs cache, or an image that is gone: no device
	}
	if err != nil {
		act(Finding{Key: key, What: FindOrphanLoop, Path: r.imagePath(key), Action: "listed"},
			func() (string, error) { return "", err })
	}
	for _, d := range devs {
		act(Finding{Key: key, What: FindOrphanLoop, Path: d.Path, Action: "detached"},
			func() (string, error) { return "", r.detachOrphan(key, d) })
	}
}

// endDeadLease ends the processes of the dead lease the owner record of key
// names. hasOwner says whether there is a record (owner is nil when it
// cannot be read).
func (r *Root) endDeadLease(ctx context.Context, key string, act func(Finding, func() (string, error))) (owner *Owner, hasOwner bool) {
	o, err := r.readOwner(key)
	if err != nil && errors.Is(err, os.ErrNotExist) {
		return nil, false
	}
	if o != nil && o.Group != "" {
		if g, gerr := proctree.Open(o.Group); gerr == nil && g != nil {
			act(Finding{Key: key, What: FindDeadLease, Path: o.Group, Action: "ended",
				Note: fmt.Sprintf("processes of the lease of pid %d, which is gone", o.PID)},
				func() (string, error) { return endGroup(ctx, g, o.PID) })
		}
	}
	return o, true
}

// endProcesses ends every process of a lease's group, waiting at most
// endWait, and removes the group; n is how many processes it found.
func endProcesses(ctx context.Context, g *proctree.Group) (n int, err error) {
	ctx, cancel := context.WithTimeout(ctx, endWait)
	defer cancel()
	if n, err = g.Kill(ctx); err != nil {
		return n, err
	}
	return n, g.Remove()
}

// endGroup ends every process of a dead lease's group and removes it.
func endGroup(ctx context.Context, g *proctree.Group, holder int) (string, error) {
	n, err := endProcesses(ctx, g)
	if err != nil {
		return "", fmt.Errorf("end the processes of the lease of pid %d: %w", holder, err)
	}
	if n == 0 {
		return fmt.Sprintf("the lease of pid %d had no process left", holder), nil
	}
	return fmt.Sprintf("ended %d processes of the lease of pid %d, which is gone", n, holder), nil
}

// repairUsers looks for processes that still use the cache's image after
// its lease ended. Without o.killUsers it names them and fails (ErrInUse).
func (r *Root) repairUsers(ctx context.Context, key string, o repairOpts, act func(Finding, func() (string, error))) (*volumes.ImageUse, error) {
	use, err := r.findUse(key)
	if err != nil {
		return nil, nil // not known: detachOrphans looks again
	}
	if len(use.Users) == 0 {
		return use, nil // nothing but our own mount
	}
	path := use.Image
	if len(use.Devices) > 0 {
		path = strings.Join(use.Devices, ",")
	}
	f := Finding{Key: key, What: FindOrphaned, Path: path,
		Note: procscan.Describe(use.Users, 5)}
	ierr := &volumes.ImageInUseError{Use: use}
	if !o.killUsers || slices.Contains(procscan.PIDs(use.Users), 0) {
		f.Action = "kept"
		f.Err = fmt.Errorf("cache %q: %w; end them, or run again with --kill-users", key, ierr)
		act(f, func() (string, error) { return "", nil })
		return nil, f.Err
	}
	f.Action = "killed"
	act(f, func() (string, error) {
		ctx, cancel := context.WithTimeout(ctx, endWait)
		defer cancel()
		return "", proctree.KillAll(ctx, procscan.PIDs(use.Users))
	})
	return nil, nil // what the killed users held is listed again
}

// findUse finds what still uses the cache's backing: a loop image's devices
// and their holders, or, for a dir or vfs cache, the mount namespaces that
// hold a bind mount of its directory.
func (r *Root) findUse(key string) (*volumes.ImageUse, error) {
	if exists(r.dataPath(key)) {
		users, err := volumes.FindDirUse(r.dataPath(key), r.MountPath(key))
		return &volumes.ImageUse{Image: r.dataPath(key), Users: users}, err
	}
	return volumes.FindImageUse(r.imagePath(key), r.MountPath(key))
}

// detachOrphan detaches a loop device left on the image and confirms that
// the kernel really unbound it: LOOP_CLR_FD on a device that something
// still holds only marks it for autoclear.
func (r *Root) detachOrphan(key string, d volumes.LoopInfo) error {
	if err := volumes.DetachDevice(d, 2*time.Second); err != nil {
		if use, uerr := volumes.FindImageUse(r.imagePath(key), r.MountPath(key)); uerr == nil && use.InUse() {
			return fmt.Errorf("cache %q: %w", key, &volumes.ImageInUseError{Use: use})
		}
		return err
	}
	return nil
}

// removeHalfCreated removes the data of a key that has no record: a create
// that died before its last step. The caller holds the lock.
func (r *Root) removeHalfCreated(ctx context.Context, key string, dryRun bool) []Finding {
	var out []Finding
	for _, p := range []string{r.imagePath(key), r.imagePath(key) + ".tmp", r.dataPath(key), r.MountPath(key)} {
		if _, err := os.Lstat(p); err == nil {
			out = append(out, Finding{Key: key, What: FindHalfCreated, Path: p, Action: "removed"})
		}
	}
	if dryRun {
		return out
	}
	if err := r.removeLocked(ctx, key, nil); err != nil && len(out) > 0 {
		out[len(out)-1].Err = err
	}
	return out
}

// recoverTemp removes old temporary files of atomic writes and probes,
// anything a dead probe left mounted in tmp/, and the busy markers of
// processes that are gone.
func (r *Root) recoverTemp(dryRun bool) []Finding {
	var out []Finding
	for _, d := range []string{"records", "locks", "tmp", "pulls"} {
		entries, _ := os.ReadDir(filepath.Join(r.path, d))
		for _, e := range entries {
			p := filepath.Join(r.path, d, e.Name())
			info, err := e.Info()
			stale := err == nil && (isTempName(d, e.Name()) && time.Since(info.ModTime()) >= tempAge ||
				d == "locks" && deadBusyMarker(e.Name()) || d == "pulls" && stalePull(p, info))
			if !stale {
				continue
			}
			f := Finding{What: FindTempFile, Path: p, Action: "removed"}
			if !dryRun {
				if err := removeTemp(p); err != nil {
					f.Err = err
				}
			}
			out = append(out, f)
		}
	}
	return out
}

// deadBusyMarker tells a busy marker (KEY.busy@PID, see markBusy) whose
// process is gone.
func deadBusyMarker(name string) bool {
	_, pid, ok := strings.Cut(name, ".busy@")
	n, err := strconv.Atoi(pid)
	return ok && err == nil && n > 0 && !processAlive(n)
}

// isTempName tells the temporary files dindstore makes: everything in tmp/,
// and the ".tmp-" files atomic writes leave in records/ and locks/.
func isTempName(dir, name string) bool {
	return dir == "tmp" || strings.HasPrefix(name, ".tmp-")
}

func removeTemp(p string) error {
	if err := volumes.Unmount(p); err != nil {
		return err
	}
	return os.RemoveAll(p)
}

// processAlive tells whether pid is a running process.
func processAlive(pid int) bool {
	_, err := processStartTime(pid)
	return err == nil
}

// markAbandoned marks a per-job cache whose holder (owner) died without
// releasing it: its job never ended, so nothing will commit or remove it;
// gc removes it (StateAbandoned). Another cache is left as it is.
func (r *Root) markAbandoned(key string, owner *Owner) {
	reason := "its holder died before its job ended"
	if owner != nil {
		reason = fmt.Sprintf("its holder, pid %d (%s), died before its job ended", owner.PID, owner.CommandLine())
	}
	if rec, err := r.readRecord(key); err != nil || !rec.PerJob {
		return // no record written for any other cache
	}
	_ = r.updateRecord(key, func(rec *Record) { rec.Abandoned = &Problem{Reason: reason, At: time.Now().UTC()} })
}
