package procscan

import (
	"slices"
	"testing"
)

func TestOverlayDirs(t *testing.T) {
	got := overlayDirs("rw,lowerdir=/a/l1:/a/l2,upperdir=/a/u,workdir=/a/w,index=off")
	want := []string{"/a/l1", "/a/l2", "/a/u", "/a/w"}
	if !slices.Equal(got, want) {
		t.Errorf("overlayDirs = %q, want %q", got, want)
	}
}

func TestBelow(t *testing.T) {
	cases := []struct {
		p, prefix string
		want      bool
	}{
		{"/r/mounts/k", "/r/mounts/k", true},
		{"/r/mounts/k/overlay2/x", "/r/mounts/k", true},
		{"/r/mounts/k2", "/r/mounts/k", false},
		{"/r/mounts/k", "", false},
		{"/r/mounts/k/x", "/r/mounts/k/", true},
	}
	for _, c := range cases {
		if got := below(c.p, c.prefix); got != c.want {
			t.Errorf("below(%q, %q) = %v", c.p, c.prefix, got)
		}
	}
}

func TestDescribe(t *testing.T) {
	users := []User{{PID: 7, Command: "sleep 1", How: "cwd is /m"}, {How: "mounted at /x in dindstore's mount namespace"},
		{PID: 9, Command: "sh", How: "fd/3 is /m/f"}}
	got := Describe(users, 2)
	want := "pid 7 (sleep 1): cwd is /m; mounted at /x in dindstore's mount namespace; and 1 more"
	if got != want {
		t.Errorf("Describe = %q, want %q", got, want)
	}
	if p := PIDs(users); !slices.Equal(p, []int{7, 0, 9}) {
		t.Errorf("PIDs = %v", p)
	}
}
