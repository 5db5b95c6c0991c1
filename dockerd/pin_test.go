package dockerd

import (
	"errors"
	"slices"
	"testing"
)

func TestPinArgs(t *testing.T) {
	cases := []struct {
		argv       []string
		entrypoint bool
		want       []string
	}{
		{[]string{"dockerd", "--data-root", "/m"}, false, []string{"dockerd", "--data-root", "/m", "--storage-driver=overlay2"}},
		{[]string{"/usr/bin/dockerd", "--storage-driver", "overlay2"}, false, []string{"/usr/bin/dockerd", "--storage-driver", "overlay2"}},
		{[]string{"dockerd", "-s=overlay2"}, false, []string{"dockerd", "-s=overlay2"}},
		{[]string{"sh", "-c", "dockerd"}, false, []string{"sh", "-c", "dockerd"}},
		{nil, true, []string{"--storage-driver=overlay2"}},
		{[]string{"--tls=false"}, true, []string{"--tls=false", "--storage-driver=overlay2"}},
		{[]string{"sh"}, true, []string{"sh"}},
	}
	for _, c := range cases {
		got, err := PinArgs(c.argv, "overlay2", c.entrypoint)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("PinArgs(%q) = %q, %v; want %q", c.argv, got, err, c.want)
		}
	}
	for _, argv := range [][]string{{"dockerd", "--storage-driver=vfs"}, {"dockerd", "-s", "vfs"}} {
		if _, err := PinArgs(argv, "overlay2", false); !errors.Is(err, ErrDriverConflict) {
			t.Errorf("PinArgs(%q) = %v, want ErrDriverConflict", argv, err)
		}
	}
}

func TestPinEnv(t *testing.T) {
	env, warn := PinEnv([]string{"A=1", "DOCKER_DRIVER=vfs"}, "overlay2")
	if !slices.Equal(env, []string{"A=1", "DOCKER_DRIVER=overlay2"}) || warn == "" {
		t.Fatalf("PinEnv = %q, %q", env, warn)
	}
	if _, warn := PinEnv([]string{"DOCKER_DRIVER=overlay2"}, "overlay2"); warn != "" {
		t.Fatalf("agreeing DOCKER_DRIVER warned: %q", warn)
	}
}

func TestFlagValues(t *testing.T) {
	args := []string{"dockerd", "--data-root", "/m", "-H", "unix:///a.sock", "--host=tcp://1.2.3.4:2375", "-H=unix:///b", "-H"}
	if got := FlagValues(args, "--data-root"); len(got) != 1 || got[0] != "/m" {
		t.Errorf("data-root: %q", got)
	}
	if got := FlagValues(args, "--host", "-H"); !slices.Equal(got, []string{"unix:///a.sock", "tcp://1.2.3.4:2375", "unix:///b", ""}) {
		t.Errorf("host: %q", got)
	}
	if !IsDockerd([]string{"/usr/bin/dockerd"}) || IsDockerd([]string{"sh"}) || IsDockerd(nil) {
		t.Error("IsDockerd wrong")
	}
}
