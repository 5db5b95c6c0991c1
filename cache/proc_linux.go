package cache

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
)

var bootIDOnce = sync.OnceValue(func() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
})

// bootID identifies the running boot.
func bootID() string { return bootIDOnce() }

// processStartTime reads field 22 of /proc/PID/stat (start time in clock
// ticks after boot). The command field may hold spaces and parentheses, so
// fields are counted after its last ')'.
func processStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseStartTime(string(b))
}

func parseStartTime(stat string) (uint64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc stat line")
	}
	fields := strings.Fields(stat[i+1:])
	// fields[0] is field 3 (state); field 22 is fields[19].
	if len(fields) < 20 {
		return 0, fmt.Errorf("short /proc stat line")
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

// readFlocks maps every flock-locked file (device numbers and inode) to the
// pid holding it, from /proc/locks, without taking any lock.
func readFlocks() (map[fileID]int, error) {
	f, err := os.Open("/proc/locks")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseFlocks(f)
}

// parseFlocks reads /proc/locks lines such as
// "1: FLOCK  ADVISORY  WRITE 1234 fd:00:5678 0 EOF"; waiters ("->") and
// other lock kinds are skipped.
func parseFlocks(r io.Reader) (map[fileID]int, error) {
	out := map[fileID]int{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[1] != "FLOCK" {
			continue
		}
		var id fileID
		if _, err := fmt.Sscanf(fields[5], "%x:%x:%d", &id.major, &id.minor, &id.ino); err != nil {
			continue
		}
		if pid, err := strconv.Atoi(fields[4]); err == nil {
			out[id] = pid
		}
	}
	return out, sc.Err()
}
