package cache

import "testing"

// TestStateOf: which state each combination of facts gives.
func TestStateOf(t *testing.T) {
	p := &Problem{Reason: "why"}
	bound := []string{"/dev/loop7"}
	cases := []struct {
		name string
		f    Facts
		want string
	}{
		{"nothing", Facts{}, StateIdle},
		{"held", Facts{Held: true}, StateInUse},
		{"held and damaged", Facts{Held: true, Damaged: p}, StateDamaged},
		{"damaged and bound", Facts{Damaged: p, Bound: bound}, StateDamaged},
		{"bound, no holder", Facts{Bound: bound}, StateOrphaned},
		{"held and bound", Facts{Held: true, Bound: bound}, StateInUse},
		{"release failed", Facts{ReleaseFailed: p}, StateReleaseFailed},
		{"bound and release failed", Facts{Bound: bound, ReleaseFailed: p}, StateOrphaned},
		{"warm cut short", Facts{Incomplete: p}, StateIncomplete},
		{"warm in progress", Facts{Held: true, Incomplete: p}, StateInUse},
		{"killed warm still bound", Facts{Incomplete: p, Bound: bound}, StateOrphaned},
		{"damaged warm cut short", Facts{Incomplete: p, Damaged: p}, StateDamaged},
		{"job's holder died", Facts{Abandoned: p}, StateAbandoned},
		{"abandoned, release failed", Facts{Abandoned: p, ReleaseFailed: p}, StateReleaseFailed},
	}
	for _, c := range cases {
		if got, _ := StateOf(c.f); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}
