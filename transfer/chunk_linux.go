package transfer

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// PlanChunks lists the chunks of the image open at f (size bytes) that
// hold data, by SEEK_DATA and SEEK_HOLE: a chunk the image has no block in
// is left out, and a puller leaves it a hole.
func PlanChunks(f *os.File, size, chunkSize int64) ([]Chunk, error) {
	if err := checkChunkSize(chunkSize); err != nil {
		return nil, err
	}
	var data [][2]int64
	fd := int(f.Fd())
	for off := int64(0); off < size; {
		start, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // no data past off
		}
		if err != nil {
			return nil, fmt.Errorf("seek data in %s at %d: %w", f.Name(), off, err)
		}
		end, err := unix.Seek(fd, start, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("seek hole in %s at %d: %w", f.Name(), start, err)
		}
		data = append(data, [2]int64{start, min(end, size)})
		off = end
	}
	return chunksOf(data, size, chunkSize), nil
}

// punchHole deallocates length bytes of f from off (they read as zeros),
// keeping its size.
func punchHole(f *os.File, off, length int64) error {
	if length <= 0 {
		return nil
	}
	err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, length)
	if err != nil {
		return fmt.Errorf("punch a hole in %s at %d (%d bytes): %w", f.Name(), off, length, err)
	}
	return nil
}
