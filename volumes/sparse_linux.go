package volumes

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// DataRanges lists the regions [start, end) of the first size bytes of f
// that hold data (SEEK_DATA and SEEK_HOLE): everything else is a hole.
func DataRanges(f *os.File, size int64) ([][2]int64, error) {
	var out [][2]int64
	for off := int64(0); off < size; {
		data, hole, err := nextData(f, off, size)
		if errors.Is(err, unix.ENXIO) {
			break // no data past off
		}
		if err != nil {
			return nil, fmt.Errorf("find the data of %s at %d: %w", f.Name(), off, err)
		}
		if data >= size {
			break
		}
		out = append(out, [2]int64{data, hole})
		off = hole
	}
	return out, nil
}

// CopyRanges copies each range [start, end) of src into dst at the same
// offset, every byte (zeros too: dst may hold other data there), in the
// kernel (copy_file_range) where it can.
func CopyRanges(dst, src *os.File, ranges [][2]int64) error {
	for _, r := range ranges {
		in, out, n := r[0], r[0], r[1]-r[0]
		for n > 0 {
			c, err := unix.CopyFileRange(int(src.Fd()), &in, int(dst.Fd()), &out, int(min(n, 1<<30)), 0)
			if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) {
				_, err = io.Copy(io.NewOffsetWriter(dst, in), io.NewSectionReader(src, in, n))
				c = int(n)
			}
			if err != nil {
				return fmt.Errorf("copy %s into %s at %d: %w", src.Name(), dst.Name(), in, err)
			}
			if c == 0 {
				return fmt.Errorf("copy %s into %s at %d: no progress", src.Name(), dst.Name(), in)
			}
			n -= int64(c)
		}
	}
	return nil
}

// PunchHole deallocates n bytes of f from off (they read as zeros), keeping
// its size.
func PunchHole(f *os.File, off, n int64) error {
	if n <= 0 {
		return nil
	}
	if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n); err != nil {
		return fmt.Errorf("punch a hole in %s at %d (%d bytes): %w", f.Name(), off, n, err)
	}
	return nil
}

// StartWriteback starts writing n bytes of f from off to the disk, without
// waiting: a long write's final fsync then has little left to do.
func StartWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
