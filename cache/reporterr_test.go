package cache

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestReportsMarshalTheirError(t *testing.T) {
	boom := errors.New("unmount: device busy")
	cases := []any{Finding{Key: "k", What: FindStaleMount, Err: boom}, Entry{Key: "k", Err: boom}, Removal{Key: "k", Err: boom}}
	for _, v := range cases {
		b, err := json.Marshal(v)
		if err != nil || !strings.Contains(string(b), `"error":"unmount: device busy"`) || !strings.Contains(string(b), `"key":"k"`) {
			t.Errorf("%T: %s, %v", v, b, err)
		}
	}
	if b, _ := json.Marshal(Finding{Key: "k"}); strings.Contains(string(b), "error") {
		t.Errorf("a finding without error marshals one: %s", b)
	}
	var held *HeldError
	f := Finding{Err: &HeldError{Key: "k"}}
	if !errors.As(f.Err, &held) || !errors.Is(f.Err, ErrLocked) {
		t.Error("a finding's error is not the error itself")
	}
}

// TestFindingString: a finding's log line has no format artefacts (a nil
// error printed as %!s(<nil>)) and says each part once.
func TestFindingString(t *testing.T) {
	f := Finding{Key: "k", What: FindDeadLease, Path: "/g", Action: "ended", Note: "of pid 1"}
	if got, want := f.String(), "k dead-lease /g: ended (of pid 1)"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
	f.Err, f.Note, f.Key = errors.New("boom"), "", ""
	if got, want := f.String(), "dead-lease /g: ended: FAILED: boom"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}
