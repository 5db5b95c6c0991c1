package volumes

import (
	"cmp"
	"slices"
)

// Extent is a run of a file's data on the host's disk.
type Extent struct {
	Physical, Length uint64
}

// UnionBytes is how many bytes a set of extents covers, overlaps counted
// once.
func UnionBytes(extents []Extent) uint64 {
	sorted := slices.Clone(extents)
	slices.SortFunc(sorted, func(a, b Extent) int { return cmp.Compare(a.Physical, b.Physical) })
	var total, end uint64
	for _, e := range sorted {
		lo, hi := e.Physical, e.Physical+e.Length
		if lo < end {
			lo = end
		}
		if hi > lo {
			total += hi - lo
			end = hi
		}
	}
	return total
}
