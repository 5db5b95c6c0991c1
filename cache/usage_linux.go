package cache

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// statUsage is a statfs of the filesystem mounted at path.
func statUsage(path string) (*Usage, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return nil, fmt.Errorf("statfs %s: %w", path, err)
	}
	return &Usage{
		FSBytes:    int64(st.Blocks) * st.Bsize,
		UsedBytes:  int64(st.Blocks-st.Bfree) * st.Bsize,
		Inodes:     st.Files,
		InodesUsed: st.Files - st.Ffree,
		At:         time.Now().UTC(),
	}, nil
}

// hostStat is a statfs of the host filesystem holding the root.
func (r *Root) hostStat() (free, total int64, freeInodes, inodes uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(r.path, &st); err != nil {
		return 0, 0, 0, 0, fmt.Errorf("statfs %s: %w", r.path, err)
	}
	return int64(st.Bavail) * st.Bsize, int64(st.Blocks) * st.Bsize, st.Ffree, st.Files, nil
}
