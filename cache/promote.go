package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/dindstore/dindstore/internal/fault"
	"github.com/dindstore/dindstore/volumes"
	"github.com/moby/sys/atomicwriter"
)

// promotion is the journal of a commit in progress, written before the
// first rename so that recover can finish or undo it.
type promotion struct {
	Warm       string `json:"warm"`
	Clone      string `json:"clone"`
	Generation int    `json:"generation"`
}

func (r *Root) journalPath(warm string) string {
	return filepath.Join(r.path, "records", ".promote-"+warm)
}

// backing is where a cache's data lives: its image, or its data directory.
func (r *Root) backing(rec *Record, key string) string {
	if rec.Kind == volumes.Loop {
		return r.imagePath(key)
	}
	return r.dataPath(key)
}

// previousName names generation gen of warm (not a valid key: '@').
func previousName(backing string, gen int) string {
	return fmt.Sprintf("%s@g%d", backing, gen)
}

// Promote makes the clone key the next generation of the warm cache it was
// cloned from: the clone's data becomes the warm cache's, the warm cache's
// current data is kept as its previous generation (until prune removes it),
// and the clone is gone. Jobs running on other clones are unaffected. Two
// commits at once are serialised by the warm cache's lock: the later wins,
// the earlier stays as the previous generation. Nothing is ever
// half-promoted: a journal lets recover finish or undo a commit cut short.
func (r *Root) Promote(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	rec, err := r.readRecord(key)
	if err != nil {
		return err
	}
	if !rec.Clone || rec.Parent == "" {
		return fmt.Errorf("%w: cache %q is not a clone of a warm cache; nothing to commit it to", ErrInvalid, key)
	}
	cl, err := r.lockBusy(ctx, key)
	if err != nil {
		return err
	}
	defer cl.release()
	if rec, err = r.readRecord(key); err == nil { // as its last holder left it
		err = rec.usable()
	}
	if err != nil {
		return fmt.Errorf("commit %q: %w", key, err) // a damaged clone never becomes the warm cache
	}
	wl, err := r.lockWithin(ctx, rec.Parent, quietWait)
	if err != nil {
		return fmt.Errorf("commit %q into %q: %w", key, rec.Parent, err)
	}
	defer wl.release()
	warm, err := r.readRecord(rec.Parent)
	if err != nil {
		return fmt.Errorf("commit %q: its warm cache: %w", key, err)
	}
	if warm.Kind != rec.Kind || warm.FS != rec.FS {
		return fmt.Errorf("%w: cannot commit %s cache %q into %s cache %q", ErrInvalid, rec.Kind, key, warm.Kind, warm.Key)
	}
	if _, err := r.repairLocked(ctx, key, repairOpts{}); err != nil {
		return err
	}
	p := promotion{Warm: warm.Key, Clone: key, Generation: warm.Generation + 1}
	if err := r.writeJournal(p); err != nil {
		return err
	}
	if err := r.finishPromotion(ctx, p, warm, rec); err != nil {
		return fmt.Errorf("commit %q into %q (recover finishes it): %w", key, warm.Key, err)
	}
	return nil
}

func (r *Root) writeJournal(p promotion) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return atomicwriter.WriteFile(r.journalPath(p.Warm), b, 0o600)
}

// finishPromotion does (or redoes) the steps of a journaled commit; each
// step checks whether it is done already.
func (r *Root) finishPromotion(ctx context.Context, p promotion, warm, clone *Record) error {
	cur, prev := r.backing(warm, warm.Key), previousName(r.backing(warm, warm.Key), warm.Generation)
	from := r.backing(clone, clone.Key)
	if exists(from) {
		if exists(cur) {
			if err := os.Rename(cur, prev); err != nil {
				return err
			}
		}
		if err := fault.Point("during-commit"); err != nil {
			return err
		}
		if err := os.Rename(from, cur); err != nil {
			return err
		}
	}
	now := time.Now().UTC()
	if err := r.updateRecord(warm.Key, func(rec *Record) {
		if rec.Generation < p.Generation {
			rec.Generation, rec.LastUsed, rec.Usage = p.Generation, now, clone.Usage
			rec.Incomplete, rec.Pulled = nil, "" // a job's whole cache replaces what a cut warm left
			if exists(prev) {
				rec.Previous = append(rec.Previous, filepath.Base(prev))
			}
		}
	}); err != nil {
		return err
	}
	// The clone's data is the warm cache's now: what is left of it is its
	// record, mount point and lock, which the caller holds.
	if err := r.removeLocked(ctx, clone.Key, nil); err != nil {
		return err
	}
	return os.Remove(r.journalPath(p.Warm))
}

// recoverPromotions finishes every commit cut short: all its steps can be
// redone from the journal, so recover rolls forward, never back, unless
// the clone's record is gone (then the journal is dropped).
func (r *Root) recoverPromotions(ctx context.Context, dryRun bool) []Finding {
	journals, _ := filepath.Glob(filepath.Join(r.path, "records", ".promote-*"))
	var out []Finding
	for _, j := range journals {
		b, err := r.readSmall(j)
		var p promotion
		if err == nil {
			err = json.Unmarshal(b, &p)
		}
		f := Finding{Key: p.Warm, What: FindPromotionCut, Path: j, Action: "completed"}
		if err == nil && !dryRun {
			err = r.redoPromotion(ctx, p)
		}
		if err != nil {
			f.Err = err
		}
		out = append(out, f)
	}
	return out
}

func (r *Root) redoPromotion(ctx context.Context, p promotion) error {
	wl, err := r.tryLock(p.Warm)
	if err != nil {
		return err
	}
	defer wl.release()
	warm, err := r.readRecord(p.Warm)
	if err != nil {
		return err
	}
	cl, err := r.tryLock(p.Clone)
	if err != nil {
		return err
	}
	defer cl.release()
	clone, err := r.readRecord(p.Clone)
	if errors.Is(err, ErrNotFound) { // the last steps had run
		return os.Remove(r.journalPath(p.Warm))
	}
	if err != nil {
		return err
	}
	if warm.Generation >= p.Generation { // the record was written: only cleanup left
		warm.Generation = p.Generation - 1
	}
	return r.finishPromotion(ctx, p, warm, clone)
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
