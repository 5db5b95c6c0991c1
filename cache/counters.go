package cache

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/moby/sys/atomicwriter"
)

// Counters are totals kept across runs in the root, for metrics.
type Counters struct {
	PrunedCaches int64 `json:"pruned_caches"`
	PrunedBytes  int64 `json:"pruned_bytes"`
	GCRemoved    int64 `json:"gc_removed"`
	// WarmMisses counts, per warm key, the jobs that asked for it while
	// it did not exist (its record cannot count them).
	WarmMisses map[string]int64 `json:"warm_misses,omitempty"`
}

func (c *Counters) addMiss(warm string) {
	if c.WarmMisses == nil {
		c.WarmMisses = map[string]int64{}
	}
	c.WarmMisses[warm]++
}

func (r *Root) countersPath() string { return filepath.Join(r.path, "counters.json") }

// Counters reads the totals; none yet is all zero.
func (r *Root) Counters() (Counters, error) {
	var c Counters
	b, err := r.readSmall(r.countersPath())
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%w: %s: %w", ErrCorruptRecord, r.countersPath(), err)
	}
	return c, nil
}

// addCounters changes the totals under the records lock. Counting is best
// effort: a failure is returned but loses nothing else.
func (r *Root) addCounters(change func(*Counters)) error {
	return r.withRecords(func() error {
		c, err := r.Counters()
		if err != nil {
			c = Counters{} // a corrupt file restarts the counts
		}
		change(&c)
		b, err := jsonMarshal(c)
		if err != nil {
			return err
		}
		return atomicwriter.WriteFile(r.countersPath(), b, 0o600)
	})
}

// countPrune adds what a prune removed to the totals.
func (r *Root) countPrune(removals []Removal) {
	var n, bytes int64
	for _, rm := range removals {
		if rm.Removed {
			n, bytes = n+1, bytes+rm.FreesBytes
		}
	}
	if n > 0 {
		_ = r.addCounters(func(c *Counters) { c.PrunedCaches += n; c.PrunedBytes += bytes })
	}
}
