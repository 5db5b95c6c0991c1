//go:build !linux

package transfer

import "os"

// PlanChunks lists every chunk of the image: without SEEK_DATA, holes are
// not told apart from data.
func PlanChunks(_ *os.File, size, chunkSize int64) ([]Chunk, error) {
	if err := checkChunkSize(chunkSize); err != nil {
		return nil, err
	}
	return chunksOf([][2]int64{{0, size}}, size, chunkSize), nil
}

// punchHole zeroes length bytes of f from off.
func punchHole(f *os.File, off, length int64) error {
	zero := make([]byte, 1<<20)
	for length > 0 {
		n := min(length, int64(len(zero)))
		if _, err := f.WriteAt(zero[:n], off); err != nil {
			return err
		}
		off, length = off+n, length-n
	}
	return nil
}
