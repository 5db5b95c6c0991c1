package proctree

import "testing"

func TestWithin(t *testing.T) {
	base := "/sys/fs/cgroup/unified"
	cases := map[string]bool{
		base + "/dindstore/abc.key.1.2":    true,
		base + "/dindstore":                false,
		base + "/dindstore/../docker":      false,
		base + "/dindstore/a/b":            false,
		base + "/other/abc":                false,
		base + "/dindstore/.hidden":        false,
		"/sys/fs/cgroup/dindstore/abc.k.1": false,
	}
	for p, want := range cases {
		if got := within(base, p); got != want {
			t.Errorf("within(%q) = %v, want %v", p, got, want)
		}
	}
}
