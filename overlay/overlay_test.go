package overlay

import (
	"errors"
	"testing"
)

func TestResultErr(t *testing.T) {
	ok := Result{Dir: "/x", FSType: "ext4", DType: true, Mount: true}
	if ok.Err() != nil || !ok.Supported() {
		t.Fatal("supported result gives an error")
	}
	bad := Result{Dir: "/x", FSType: "xfs", DType: false, Reason: "no d_type"}
	if err := bad.Err(); !errors.Is(err, ErrNotSupported) {
		t.Fatalf("Err = %v, want ErrNotSupported", err)
	}
}

func TestFSName(t *testing.T) {
	if FSName(0xEF53) != "ext4" || FSName(0x794c7630) != "overlay" || FSName(1) != "0x1" {
		t.Fatal("FSName wrong")
	}
}
