//go:build !linux

package cache

import "errors"

var errNoProc = errors.New("process information needs Linux /proc")

func bootID() string { return "" }

func processStartTime(int) (uint64, error) { return 0, errNoProc }

func readFlocks() (map[fileID]int, error) { return nil, errNoProc }
