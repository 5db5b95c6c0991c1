package cache

import "fmt"

// Pin marks the cache key as owned by by (a Kubernetes object, say): prune
// passes it, and `dindstore rm` asks for --force. An empty by unpins it.
// Its owner removes it with Remove.
func (r *Root) Pin(key, by string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if len(by) > maxPinLen {
		return fmt.Errorf("%w: a pin of %d bytes (at most %d)", ErrInvalid, len(by), maxPinLen)
	}
	if err := r.updateRecord(key, func(rec *Record) { rec.Pinned = by }); err != nil {
		return fmt.Errorf("pin %q: %w", key, err)
	}
	return nil
}

// maxPinLen bounds what a pin says (a record stays small).
const maxPinLen = 512
