package loopdev

import "testing"

func TestTagIsCut(t *testing.T) {
	long := make([]byte, 200)
	for i := range long {
		long[i] = 'a'
	}
	if got := Tag("dindstore:", string(long)); len(got) != TagMax {
		t.Fatalf("Tag length %d, want %d", len(got), TagMax)
	}
	if got := Tag("dindstore:", "k1"); got != "dindstore:k1" {
		t.Fatalf("Tag = %q", got)
	}
}

func TestCString(t *testing.T) {
	if got := cString([]byte{'a', 'b', 0, 'c'}); got != "ab" {
		t.Fatalf("cString = %q", got)
	}
	if got := cString([]byte("abc")); got != "abc" {
		t.Fatalf("cString = %q", got)
	}
}

func TestHasTagPrefix(t *testing.T) {
	i := Info{Tag: "dindstore:x"}
	if !i.HasTagPrefix("dindstore:") || i.HasTagPrefix("") || i.HasTagPrefix("other:") {
		t.Fatal("HasTagPrefix wrong")
	}
}
