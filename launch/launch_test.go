package launch

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseMissing(t *testing.T) {
	status := "Name:\tx\nCapBnd:\t000001fffeffffff\n"
	got := parseMissing(status, 40)
	if !slices.Equal(got, []string{"CAP_SYS_RESOURCE"}) {
		t.Fatalf("parseMissing = %v", got)
	}
}

func TestValidate(t *testing.T) {
	for _, s := range []Spec{{}, {Image: "x", Target: "rel"}, {Image: "x", Aliases: []string{"a"}}, {Image: "x", Publish: []string{"notaport:x:y:z"}}} {
		if err := s.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("Validate(%+v) = %v, want ErrInvalid", s, err)
		}
	}
	s := Spec{Image: "x"}
	if err := s.Validate(); err != nil || s.TargetPath() != DefaultTarget {
		t.Fatalf("Validate = %v, target %q", err, s.TargetPath())
	}
	s.Rootless = true
	if s.TargetPath() != RootlessTarget {
		t.Fatalf("rootless target %q", s.TargetPath())
	}
	if s.Unprivileged = true; !errors.Is(s.Validate(), ErrInvalid) {
		t.Fatal("--unprivileged with --rootless must be refused")
	}
}

func TestConfigs(t *testing.T) {
	cfg, host, net, err := configs(Spec{Image: "dind", Network: "n", Aliases: []string{"docker"}, Publish: []string{"2375:2375"},
		Target: "/var/lib/docker", Args: []string{"--tls=false"}}, "/m")
	if err != nil {
		t.Fatal(err)
	}
	if !host.Privileged || host.Mounts[0].Source != "/m" || host.Mounts[0].Target != "/var/lib/docker" || cfg.Cmd[0] != "--tls=false" {
		t.Fatalf("configs: %+v %+v", cfg, host)
	}
	if net.EndpointsConfig["n"].Aliases[0] != "docker" || len(host.PortBindings) != 1 {
		t.Fatalf("network config: %+v, ports %+v", net, host.PortBindings)
	}
	_, host, _, _ = configs(Spec{Image: "dind", Runtime: "sysbox-runc"}, "/m")
	if host.Privileged || host.Runtime != "sysbox-runc" {
		t.Fatal("a runtime that nests must not be privileged")
	}
}

func TestStripStreamHeaders(t *testing.T) {
	b := append([]byte{1, 0, 0, 0, 0, 0, 0, 3}, []byte("abc")...)
	b = append(b, append([]byte{2, 0, 0, 0, 0, 0, 0, 2}, []byte("de")...)...)
	if got := stripStreamHeaders(b); got != "abcde" {
		t.Fatalf("got %q", got)
	}
	if got := stripStreamHeaders([]byte("plain")); !strings.Contains(got, "plain") {
		t.Fatalf("got %q", got)
	}
}

func TestUnprivilegedConfig(t *testing.T) {
	spec := Spec{Image: "dind", Unprivileged: true, Args: []string{"--tls=false"}}
	cfg, host, _, err := configs(spec, "/m")
	if err != nil {
		t.Fatal(err)
	}
	unprivilegedConfig(spec, []string{"dockerd-entrypoint.sh"}, []string{"ignored"}, cfg, host)
	if host.Privileged || !slices.Equal(host.CapAdd, []string{"NET_ADMIN", "SYS_ADMIN"}) ||
		!slices.Contains(host.SecurityOpt, "seccomp=unconfined") || host.Sysctls["net.ipv4.ip_forward"] != "1" {
		t.Fatalf("host config: %+v", host)
	}
	want := []string{"/bin/sh", "-c", shimScript(false), "dindstore-shim", "dockerd-entrypoint.sh"}
	if !slices.Equal(cfg.Entrypoint, want) || !slices.Equal(cfg.Cmd, []string{"--tls=false"}) {
		t.Fatalf("entrypoint %q, cmd %q", cfg.Entrypoint, cfg.Cmd)
	}
	if !strings.Contains(want[2], "/proc/sys/net") {
		t.Fatalf("the shim leaves /proc/sys/net read-only (Docker 28+ cannot start inner containers): %q", want[2])
	}
	// With the host's network, /proc/sys/net is the host's: never writable.
	hostNet := Spec{Image: "dind", Unprivileged: true, Network: "host"}
	cfg, host, _, err = configs(hostNet, "/m")
	if err != nil {
		t.Fatal(err)
	}
	unprivilegedConfig(hostNet, nil, nil, cfg, host)
	if strings.Contains(cfg.Entrypoint[2], "/proc/sys/net") || host.Sysctls != nil {
		t.Fatalf("with the host's network: entrypoint %q, sysctls %v", cfg.Entrypoint, host.Sysctls)
	}
	bad := Spec{Image: "dind", Unprivileged: true, Runtime: "sysbox-runc"}
	if err := bad.Validate(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("--unprivileged with --runtime: %v", err)
	}
}

func TestRootless(t *testing.T) {
	for user, want := range map[string][2]int{"rootless": {1000, 1000}, "2000": {2000, 2000}, "2000:3000": {2000, 3000}} {
		if uid, gid := RootlessOwner(user); uid != want[0] || gid != want[1] {
			t.Errorf("RootlessOwner(%q) = %d:%d", user, uid, gid)
		}
	}
	if err := checkRootlessRelease("6.18.44-fc", nil); err != nil {
		t.Errorf("6.18: %v", err)
	}
	if err := checkRootlessRelease("5.10.0-21-amd64", nil); !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), "5.11") {
		t.Errorf("5.10: %v", err)
	}
	if err := checkRootlessRelease("5.10.0", []string{"--storage-driver", "fuse-overlayfs"}); err != nil {
		t.Errorf("5.10 with fuse-overlayfs: %v", err)
	}
}

func TestParseDevice(t *testing.T) {
	d, err := parseDevice("/srv/tun:/dev/net/tun:rw")
	if err != nil || d.PathOnHost != "/srv/tun" || d.PathInContainer != "/dev/net/tun" || d.CgroupPermissions != "rw" {
		t.Fatalf("parseDevice: %+v, %v", d, err)
	}
	if d, err := parseDevice("/dev/fuse"); err != nil || d.PathInContainer != "/dev/fuse" || d.CgroupPermissions != "rwm" {
		t.Fatalf("parseDevice: %+v, %v", d, err)
	}
	for _, bad := range []string{"tun", "/a:rel", "/a:/b:rwx", "/a:/b:r:x", "/a:/b:"} {
		if _, err := parseDevice(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("parseDevice(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}
