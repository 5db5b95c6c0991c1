package transfer

import (
	"errors"
	"fmt"
)

// DefaultChunkSize is the size of a chunk: big enough that a manifest of a
// 100 GiB image stays small (25,600 chunks at most, far fewer with holes),
// small enough that a generation re-sends little of what did not change.
const DefaultChunkSize = 4 << 20

// MaxChunkSize bounds a chunk size a manifest may ask for: a puller holds
// a chunk in memory.
const MaxChunkSize = 64 << 20

// ErrInvalid marks a chunk size, plan or manifest that cannot be right.
var ErrInvalid = errors.New("invalid transfer")

// Chunk is a range of the image that holds data: it starts at a multiple
// of the chunk size and is at most one chunk long (the last may be
// shorter, at the image's end).
type Chunk struct {
	Offset int64
	Length int64
}

// checkChunkSize refuses a chunk size that is not a power of two between
// 64 KiB and MaxChunkSize.
func checkChunkSize(size int64) error {
	if size < 64<<10 || size > MaxChunkSize || size&(size-1) != 0 {
		return fmt.Errorf("%w: chunk size %d: want a power of two from 64 KiB to %d", ErrInvalid, size, MaxChunkSize)
	}
	return nil
}

// chunksOf turns the data ranges of an image of size bytes (sorted,
// [start, end) pairs) into the chunks of the fixed grid that they touch.
func chunksOf(data [][2]int64, size, chunkSize int64) []Chunk {
	var out []Chunk
	next := int64(0) // the first grid offset not yet taken
	for _, r := range data {
		first := max(r[0]/chunkSize*chunkSize, next)
		for off := first; off < r[1] && off < size; off += chunkSize {
			out = append(out, Chunk{Offset: off, Length: min(chunkSize, size-off)})
			next = off + chunkSize
		}
	}
	return out
}
