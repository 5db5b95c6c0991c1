package cache

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/docker/go-units"
)

// keyRE is the whole grammar of a key: it cannot hold a slash, cannot be
// "." or "..", and so cannot name a path outside the root.
var keyRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,127}$`)

// ValidateKey checks a cache key: [a-z0-9][a-z0-9._-]{0,127}.
func ValidateKey(key string) error {
	if !keyRE.MatchString(key) {
		return fmt.Errorf("%w: key %q: want 1-128 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit", ErrInvalid, key)
	}
	return nil
}

// MaxSize bounds any size (1 EiB); the host filesystem usually bounds it
// further, which volumes.CheckSparseSize finds out.
const MaxSize int64 = 1 << 60

// ParseSize parses a size such as 20GiB, 20G, 512MiB or 1073741824 (bytes).
// Units are binary (G = GiB). Zero, negative and unknown units are ErrInvalid.
func ParseSize(s string) (int64, error) {
	n, err := units.RAMInBytes(s)
	if err != nil {
		return 0, fmt.Errorf("%w: size %q: %v (examples: 20GiB, 512MiB, 1073741824)", ErrInvalid, s, err)
	}
	if n <= 0 || n > MaxSize {
		return 0, fmt.Errorf("%w: size %q: must be more than 0 and at most 1 EiB", ErrInvalid, s)
	}
	return n, nil
}

// ParseAge parses an age such as 72h, 90m, 3d or 2w (Go durations, plus d
// for days and w for weeks). Negative or malformed ages are ErrInvalid.
func ParseAge(s string) (time.Duration, error) {
	mult := time.Duration(0)
	switch {
	case strings.HasSuffix(s, "d"):
		mult = 24 * time.Hour
	case strings.HasSuffix(s, "w"):
		mult = 7 * 24 * time.Hour
	}
	var d time.Duration
	var err error
	if mult > 0 {
		var n float64
		n, err = strconv.ParseFloat(s[:len(s)-1], 64)
		d = time.Duration(n * float64(mult))
		if err == nil && (n < 0 || n > 1e5 || math.IsNaN(n)) {
			err = fmt.Errorf("out of range")
		}
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%w: age %q: want a duration such as 72h, 90m, 3d or 2w", ErrInvalid, s)
	}
	return d, nil
}

// ParsePercent parses a percentage such as 20% or 20 (0 up to, not
// including, 100).
func ParsePercent(s string) (float64, error) {
	n, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "%"), 64)
	if err != nil || n < 0 || n >= 100 || math.IsNaN(n) {
		return 0, fmt.Errorf("%w: percentage %q: want a number from 0 up to (not including) 100, such as 20%%", ErrInvalid, s)
	}
	return n, nil
}
