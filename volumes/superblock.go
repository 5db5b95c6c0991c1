package volumes

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// FSSize reads the size in bytes of the filesystem in an image from its
// superblock, without mounting it. Recovery uses it to tell a grow that was
// cut short (file extended, filesystem not yet) from one that completed.
func FSSize(image string, fs FS) (int64, error) {
	f, err := os.Open(image)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sb := make([]byte, 1024)
	off := int64(0)
	if fs == Ext4 {
		off = 1024 // the ext4 superblock starts 1024 bytes in
	}
	if _, err := f.ReadAt(sb, off); err != nil && err != io.EOF {
		return 0, fmt.Errorf("read superblock of %s: %w", image, err)
	}
	return parseFSSize(sb, fs)
}

// parseFSSize decodes the block count and block size of a superblock.
func parseFSSize(sb []byte, fs FS) (int64, error) {
	if fs == XFS {
		if string(sb[:4]) != "XFSB" {
			return 0, fmt.Errorf("%w: no xfs superblock", ErrCheckFailed)
		}
		bsize := int64(binary.BigEndian.Uint32(sb[4:8]))
		return int64(binary.BigEndian.Uint64(sb[8:16])) * bsize, nil
	}
	if binary.LittleEndian.Uint16(sb[0x38:0x3a]) != 0xEF53 {
		return 0, fmt.Errorf("%w: no ext4 superblock", ErrCheckFailed)
	}
	blocks := uint64(binary.LittleEndian.Uint32(sb[0x4:0x8]))
	const incompat64bit = 0x80
	if binary.LittleEndian.Uint32(sb[0x60:0x64])&incompat64bit != 0 {
		blocks |= uint64(binary.LittleEndian.Uint32(sb[0x150:0x154])) << 32
	}
	logBlock := binary.LittleEndian.Uint32(sb[0x18:0x1c])
	if logBlock > 6 {
		return 0, fmt.Errorf("%w: ext4 block size 2^%d KiB", ErrCheckFailed, logBlock)
	}
	return int64(blocks) << (10 + logBlock), nil
}
