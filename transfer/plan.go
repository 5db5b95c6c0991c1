package transfer

import (
	"os"

	"github.com/dindstore/dindstore/volumes"
)

// PlanChunks lists the chunks of the image open at f (size bytes) that
// hold data, by SEEK_DATA and SEEK_HOLE: a chunk the image has no block in
// is left out, and a puller leaves it a hole.
func PlanChunks(f *os.File, size, chunkSize int64) ([]Chunk, error) {
	if err := checkChunkSize(chunkSize); err != nil {
		return nil, err
	}
	data, err := volumes.DataRanges(f, size)
	if err != nil {
		return nil, err
	}
	return chunksOf(data, size, chunkSize), nil
}
