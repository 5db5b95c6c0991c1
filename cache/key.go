package cache

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ValidateKey checks a cache key: [a-z0-9][a-z0-9._-]{0,127}, the whole
// grammar of a key: it cannot hold a slash, cannot be "." or "..", and so
// cannot name a path outside the root. (Checked byte by byte: the regexp's
// {0,127} costs a third of a millisecond to compile at every start.)
func ValidateKey(key string) error {
	if !validKey(key) {
		return fmt.Errorf("%w: key %q: want 1-128 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit", ErrInvalid, key)
	}
	return nil
}

func validKey(key string) bool {
	if len(key) == 0 || len(key) > 128 || !keyByte(key[0], false) {
		return false
	}
	for i := 1; i < len(key); i++ {
		if !keyByte(key[i], true) {
			return false
		}
	}
	return true
}

// keyByte says whether b may stand in a key (punct: past its first byte).
func keyByte(b byte, punct bool) bool {
	return b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || punct && (b == '.' || b == '_' || b == '-')
}

// MaxSize bounds any size (1 EiB); the host filesystem usually bounds it
// further, which volumes.CheckSparseSize finds out.
const MaxSize int64 = 1 << 60

// sizeRE is the whole size grammar: a decimal number, optional blanks, and
// an optional unit: B, K, M, G, T, P or E, each optionally followed by B or
// iB, in any case.
var sizeRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?) *(?:([kmgtpeKMGTPE])(?:[iI]?[bB])?|[bB])?$`)
})

// sizeShift gives each unit's power of two: every unit is binary, so
// 1G = 1GB = 1GiB = 2^30 bytes (as Docker counts).
var sizeShift = map[string]uint{"": 0, "k": 10, "m": 20, "g": 30, "t": 40, "p": 50, "e": 60}

// ParseSize parses a size such as 20GiB, 20G, 512MiB, 1.5TiB, 1EiB or
// 1073741824 (bytes); see sizeRE for the grammar. Units are binary
// (G = GB = GiB). Zero, more than 1 EiB, and anything else are ErrInvalid.
func ParseSize(s string) (int64, error) {
	m := sizeRE().FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("%w: size %q: want a number and a unit, e.g. 20GiB, 512MiB, 1.5TiB or 1073741824 (bytes)", ErrInvalid, s)
	}
	n, err := strconv.ParseFloat(m[1], 64)
	n *= float64(uint64(1) << sizeShift[strings.ToLower(m[2])])
	if err != nil || n < 1 || n > float64(MaxSize) {
		return 0, fmt.Errorf("%w: size %q: must be at least 1 byte and at most 1EiB", ErrInvalid, s)
	}
	return int64(n), nil
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
