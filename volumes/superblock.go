package volumes

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// Stats are a filesystem's size and use, read from its superblock or from
// statfs.
type Stats struct {
	// SizeBytes is the filesystem's size.
	SizeBytes int64
	// UsedBytes is what is in use inside it: size minus free blocks. Read
	// from a superblock it includes the metadata (journal, inode tables)
	// that statfs leaves out of its count.
	UsedBytes int64
	// Inodes and InodesFree count inodes.
	Inodes, InodesFree uint64
	// Errors is set when the filesystem recorded errors (ext4: the error
	// state bit or a non-zero error count in its superblock).
	Errors string
	// Clean says the filesystem was cleanly unmounted: ext4's valid-state
	// bit is set, its journal needs no recovery, and no error is recorded.
	Clean bool
	// BlockBytes is the largest logical block size of a device that can
	// hold the filesystem: ext4's block size, xfs's sector size. The loop
	// device of the image must be attached with it (or a smaller one).
	BlockBytes uint32
	// UUID is the filesystem's UUID (hex): it tells one filesystem from
	// another of the same size, and stays through grows, checks and repairs.
	UUID string
}

// ReadStats reads the size and use of the filesystem in an unmounted image
// from its superblock, without mounting it. (While mounted, the kernel
// updates the on-disk counters lazily: use statfs on the mount instead.)
// Recovery uses the size to tell a grow that was cut short from one that
// completed.
func ReadStats(image string, fs FS) (Stats, error) {
	f, err := os.Open(image)
	if err != nil {
		return Stats{}, err
	}
	defer f.Close()
	sb := make([]byte, 1024)
	off := int64(0)
	if fs == Ext4 {
		off = 1024 // the ext4 superblock starts 1024 bytes in
	}
	if _, err := f.ReadAt(sb, off); err != nil && err != io.EOF {
		return Stats{}, fmt.Errorf("read superblock of %s: %w", image, err)
	}
	if fs == XFS {
		return parseXFS(sb)
	}
	return parseExt4(sb)
}

// parseXFS decodes the counters of an xfs superblock (big-endian).
func parseXFS(sb []byte) (Stats, error) {
	if string(sb[:4]) != "XFSB" {
		return Stats{}, fmt.Errorf("%w: no xfs superblock", ErrCheckFailed)
	}
	be := binary.BigEndian
	bsize := int64(be.Uint32(sb[4:8]))
	blocks, free := int64(be.Uint64(sb[8:16])), int64(be.Uint64(sb[0x90:0x98]))
	sect := uint32(be.Uint16(sb[102:104])) // sb_sectsize
	if sect < 512 || sect > 32768 || sect&(sect-1) != 0 || free > blocks {
		return Stats{}, fmt.Errorf("%w: implausible xfs superblock", ErrCheckFailed)
	}
	return Stats{SizeBytes: blocks * bsize, UsedBytes: (blocks - free) * bsize,
		Inodes: be.Uint64(sb[0x80:0x88]), InodesFree: be.Uint64(sb[0x88:0x90]), BlockBytes: sect,
		UUID: fmt.Sprintf("%x", sb[32:48])}, nil // sb_uuid
}

// parseExt4 decodes the counters of an ext4 superblock (little-endian).
func parseExt4(sb []byte) (Stats, error) {
	le := binary.LittleEndian
	if le.Uint16(sb[0x38:0x3a]) != 0xEF53 {
		return Stats{}, fmt.Errorf("%w: no ext4 superblock", ErrCheckFailed)
	}
	blocks, free := uint64(le.Uint32(sb[0x4:0x8])), uint64(le.Uint32(sb[0xc:0x10]))
	const incompat64bit = 0x80
	if le.Uint32(sb[0x60:0x64])&incompat64bit != 0 {
		blocks |= uint64(le.Uint32(sb[0x150:0x154])) << 32
		free |= uint64(le.Uint32(sb[0x158:0x15c])) << 32
	}
	logBlock := le.Uint32(sb[0x18:0x1c])
	if logBlock > 6 || free > blocks {
		return Stats{}, fmt.Errorf("%w: implausible ext4 superblock", ErrCheckFailed)
	}
	shift := 10 + logBlock
	st := Stats{SizeBytes: int64(blocks << shift), UsedBytes: int64((blocks - free) << shift),
		Inodes: uint64(le.Uint32(sb[0:4])), InodesFree: uint64(le.Uint32(sb[0x10:0x14])),
		Errors: ext4Errors(sb), BlockBytes: uint32(1) << shift, UUID: fmt.Sprintf("%x", sb[0x68:0x78])} // s_uuid
	const validFS, incompatRecover = 0x0001, 0x0004
	st.Clean = le.Uint16(sb[0x3a:0x3c])&validFS != 0 && le.Uint32(sb[0x60:0x64])&incompatRecover == 0 && st.Errors == ""
	return st, nil
}

// ext4Errors reads the superblock's error state (s_state bit 2) and error
// count (s_error_count), "" when it recorded none.
func ext4Errors(sb []byte) string {
	le := binary.LittleEndian
	const errorFS = 0x0002
	state, count := le.Uint16(sb[0x3a:0x3c]), le.Uint32(sb[0x194:0x198])
	if state&errorFS == 0 && count == 0 {
		return ""
	}
	return fmt.Sprintf("ext4 recorded errors (error state %t, %d errors)", state&errorFS != 0, count)
}

// FDPath names the open file f as /proc/PID/fd/N: a path that this
// process, and the tools it starts while f stays open, resolve to exactly
// f's inode, whatever its name now points at.
func FDPath(f *os.File) string {
	return fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), f.Fd())
}

// AttachBlockSize is the logical block size a loop device must have for
// the filesystem: its block (or sector) size, at most 4096.
func (st Stats) AttachBlockSize() uint32 { return min(st.BlockBytes, 4096) }

// ImageBlockSize is the logical block size to attach the image with: the
// one its superblock says it was made for (see Stats.BlockBytes), at most
// 4096. recorded, when not 0, is what the image's owner recorded at mkfs:
// a superblock that disagrees is ErrDamaged, naming both. An unreadable
// superblock with nothing recorded gives 512, which every filesystem takes.
func ImageBlockSize(image string, fs FS, recorded uint32) (uint32, error) {
	st, err := ReadStats(image, fs)
	if err != nil {
		if recorded != 0 {
			return recorded, nil // the mount tells what is wrong
		}
		return 512, nil
	}
	made := st.AttachBlockSize()
	if recorded != 0 && made != recorded {
		return 0, fmt.Errorf("%w: the %s filesystem in %s is made for %d-byte blocks, but it was recorded with %d-byte "+
			"blocks: the image was replaced or rewritten behind dindstore's back; remove the cache (dindstore rm)",
			ErrDamaged, fs, image, made, recorded)
	}
	return made, nil
}
