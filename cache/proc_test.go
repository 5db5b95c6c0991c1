//go:build linux

package cache

import (
	"os"
	"strings"
	"testing"
)

func TestParseStartTime(t *testing.T) {
	line := "1234 (a) b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615"
	got, err := parseStartTime(line)
	if err != nil || got != 987654 {
		t.Fatalf("parseStartTime = %d, %v; want 987654", got, err)
	}
	if _, err := parseStartTime("garbage"); err == nil {
		t.Fatal("parsed garbage")
	}
}

func TestCurrentOwnerAlive(t *testing.T) {
	o, err := CurrentOwner(os.Getpid(), os.Args)
	if err != nil {
		t.Fatal(err)
	}
	if !o.Alive() {
		t.Fatal("this process is not alive by its own owner record")
	}
	o.StartTime++
	if o.Alive() {
		t.Fatal("a reused pid (other start time) counts as alive")
	}
	o.StartTime--
	o.BootID = "another-boot"
	if o.Alive() {
		t.Fatal("a pid from another boot counts as alive")
	}
}

func TestParseFlocks(t *testing.T) {
	const fixture = `1: FLOCK  ADVISORY  WRITE 1234 fd:00:5678 0 EOF
1: -> FLOCK  ADVISORY  WRITE 999 fd:00:5678 0 EOF
2: POSIX  ADVISORY  WRITE 42 08:01:77 0 EOF
3: FLOCK  ADVISORY  WRITE 77 103:2:12 0 EOF
4: OFDLCK ADVISORY  READ  -1 00:05:99 0 EOF
`
	got, err := parseFlocks(strings.NewReader(fixture))
	if err != nil {
		t.Fatal(err)
	}
	want := map[fileID]int{{0xfd, 0, 5678}: 1234, {0x103, 2, 12}: 77}
	if len(got) != len(want) {
		t.Fatalf("parseFlocks = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%v: pid %d, want %d", k, got[k], v)
		}
	}
}
