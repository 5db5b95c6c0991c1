package cache

import "strings"

// Facts are what the disk says about one cache, read without its lock:
// the input of StateOf. Every report and every command that decides by a
// cache's state gathers them (Root.facts) and asks StateOf, so that none
// reads the markers, owner records and record fields its own way.
type Facts struct {
	// Held: a live process holds the cache's lock.
	Held bool
	// Bound lists the loop devices still bound to its image.
	Bound []string
	// Damaged is the record's damage (or the damage marker's).
	Damaged *Problem
	// ReleaseFailed is the record's failed release.
	ReleaseFailed *Problem
	// Incomplete is a warm (or another fill) that started and did not end.
	Incomplete *Problem
	// Abandoned is a per-job cache whose holder died before its job ended.
	Abandoned *Problem
}

// StateOf derives a cache's state, and why, from the facts. Damage comes
// first (it is what an operator must act on, held or not); then a live
// holder (in-use); then what a dead one left: a device still bound
// (orphaned), a release that failed; then a fill that did not finish
// (incomplete, never served as warm) and a per-job cache whose job died
// (abandoned); else idle.
func StateOf(f Facts) (state, reason string) {
	switch {
	case f.Damaged != nil:
		return StateDamaged, f.Damaged.Reason
	case f.Held:
		return StateInUse, ""
	case len(f.Bound) > 0:
		return StateOrphaned, "no live lease, but still bound to " + strings.Join(f.Bound, ", ")
	case f.ReleaseFailed != nil:
		return StateReleaseFailed, f.ReleaseFailed.Reason
	case f.Incomplete != nil:
		return StateIncomplete, f.Incomplete.Reason
	case f.Abandoned != nil:
		return StateAbandoned, f.Abandoned.Reason
	}
	return StateIdle, ""
}

// facts are what the record alone says (no holder, no bound device): what
// a caller that holds the cache's lock asks StateOf about.
func (rec *Record) facts() Facts {
	return Facts{Damaged: rec.Damaged, ReleaseFailed: rec.ReleaseFailed, Incomplete: rec.Incomplete,
		Abandoned: rec.Abandoned}
}
