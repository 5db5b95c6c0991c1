//go:build !linux

package cache

import "errors"

var errNoStatfs = errors.New("statfs needs Linux")

func statUsage(string) (*Usage, error) { return nil, errNoStatfs }

func (r *Root) hostStat() (free, total int64, freeInodes, inodes uint64, err error) {
	return 0, 0, 0, 0, errNoStatfs
}
