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
