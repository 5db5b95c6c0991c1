package volumes

import "testing"

func TestUnionBytes(t *testing.T) {
	got := UnionBytes([]Extent{{Physical: 100, Length: 50}, {Physical: 0, Length: 10}, {Physical: 120, Length: 50},
		{Physical: 100, Length: 50}, {Physical: 5, Length: 2}})
	if want := uint64(10 + 70); got != want {
		t.Errorf("UnionBytes = %d, want %d", got, want)
	}
	if UnionBytes(nil) != 0 {
		t.Error("UnionBytes(nil) != 0")
	}
}
