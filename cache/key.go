package cache

import (
	"fmt"
	"regexp"

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
