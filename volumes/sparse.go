package volumes

import "os"

// PunchOutside makes every byte of the first size bytes of f outside the
// sorted ranges [start, end) a hole.
func PunchOutside(f *os.File, size int64, ranges [][2]int64) error {
	next := int64(0)
	for _, r := range ranges {
		if err := PunchHole(f, next, r[0]-next); err != nil {
			return err
		}
		next = r[1]
	}
	return PunchHole(f, next, size-next)
}
