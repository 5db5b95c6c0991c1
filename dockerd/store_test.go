package dockerd

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestRequestedStore(t *testing.T) {
	cases := map[string][]string{
		StoreSnapshotter: {"dockerd", "--feature", "containerd-snapshotter=true"},
		StoreGraphDriver: {"dockerd", "--feature=containerd-snapshotter=false"},
		"":               {"dockerd", "--feature", "other=true"},
	}
	for want, argv := range cases {
		if got := RequestedStore(argv); got != want {
			t.Errorf("RequestedStore(%q) = %q, want %q", argv, got, want)
		}
	}
}

func TestDecideStore(t *testing.T) {
	modern, legacy := Engine{Features: true}, Engine{}
	ok := []struct {
		recorded, requested string
		eng                 Engine
		want                string
	}{
		{"", "", modern, StoreSnapshotter},
		{"", "", legacy, StoreGraphDriver},
		{StoreGraphDriver, "", modern, StoreGraphDriver},
		{"", StoreGraphDriver, modern, StoreGraphDriver},
		{StoreSnapshotter, StoreSnapshotter, modern, StoreSnapshotter},
	}
	for _, c := range ok {
		if got, err := DecideStore(c.recorded, c.requested, c.eng); err != nil || got != c.want {
			t.Errorf("DecideStore(%q, %q, %v) = %q, %v; want %q", c.recorded, c.requested, c.eng, got, err, c.want)
		}
	}
	bad := []struct {
		recorded, requested string
		eng                 Engine
	}{
		{StoreGraphDriver, StoreSnapshotter, modern},
		{StoreSnapshotter, "", legacy},
		{"", StoreSnapshotter, legacy},
	}
	for _, c := range bad {
		if _, err := DecideStore(c.recorded, c.requested, c.eng); !errors.Is(err, ErrStoreMismatch) {
			t.Errorf("DecideStore(%q, %q, %v) = %v, want ErrStoreMismatch", c.recorded, c.requested, c.eng, err)
		}
	}
}

func TestPinStoreAndDriver(t *testing.T) {
	got := PinStore([]string{"dockerd", "-D"}, StoreGraphDriver, Engine{Features: true}, false)
	if !slices.Equal(got, []string{"dockerd", "-D", "--feature=containerd-snapshotter=false"}) {
		t.Fatalf("PinStore = %q", got)
	}
	if got := PinStore([]string{"dockerd"}, StoreSnapshotter, Engine{}, false); len(got) != 1 {
		t.Fatalf("a legacy engine got a --feature: %q", got)
	}
	if got := PinStore([]string{"--tls=false"}, StoreSnapshotter, Engine{Features: true}, true); !slices.Equal(got,
		[]string{"--tls=false", "--feature=containerd-snapshotter=true"}) {
		t.Fatalf("entrypoint PinStore = %q", got)
	}
	if got := PinStore([]string{"sh"}, StoreSnapshotter, Engine{Features: true}, true); len(got) != 1 {
		t.Fatalf("a non-dockerd entrypoint command got a --feature: %q", got)
	}
	if DriverFor(StoreSnapshotter, "overlay2") != "overlayfs" || DriverFor(StoreSnapshotter, "vfs") != "native" ||
		DriverFor(StoreGraphDriver, "overlay2") != "overlay2" {
		t.Fatal("DriverFor wrong")
	}
}

func TestDetectStore(t *testing.T) {
	dir := t.TempDir()
	if DetectStore(dir) != "" {
		t.Fatal("an empty root has a store")
	}
	meta := filepath.Join(dir, "containerd", "daemon", "io.containerd.metadata.v1.bolt")
	if err := os.MkdirAll(meta, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(meta, "meta.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if DetectStore(dir) != StoreSnapshotter {
		t.Fatal("containerd metadata alone is not the snapshotter store")
	}
	// Docker 29's containerd store keeps a file in image/, no directory.
	if err := os.MkdirAll(filepath.Join(dir, "image"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "image", "identity-cache.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if DetectStore(dir) != StoreSnapshotter {
		t.Fatal("image/identity-cache.db beside containerd's metadata is not the snapshotter store")
	}
	if err := os.MkdirAll(filepath.Join(dir, "image", "overlay2"), 0o700); err != nil {
		t.Fatal(err)
	}
	if DetectStore(dir) != StoreGraphDriver {
		t.Fatal("image/overlay2 is not the graph driver store")
	}
}

// TestEngineVersion: an engine's own default store comes from its version
// where it is known (29 and later: the containerd store), else from
// whether it knows --feature.
func TestEngineVersion(t *testing.T) {
	for in, want := range map[string]int{
		"Docker version 29.1.2, build 1234567": 29, "Docker version 20.10.24+dfsg1, build 5d6db84": 20,
		"29.0.0": 29, "v28.5.1": 28, "Docker version library-import, build library-import": 0, "": 0, "dev": 0,
	} {
		if got := ParseMajor(in); got != want {
			t.Errorf("ParseMajor(%q) = %d, want %d", in, got, want)
		}
	}
	cases := []struct {
		eng  Engine
		want string
	}{
		{Engine{Features: true, Major: 29}, StoreSnapshotter},
		{Engine{Features: true, Major: 28}, StoreGraphDriver},
		{Engine{Features: true}, StoreSnapshotter}, // built from source: the current engine
		{Engine{Major: 20}, StoreGraphDriver},
		{Engine{}, StoreGraphDriver},
	}
	for _, c := range cases {
		if got := c.eng.DefaultStore(); got != c.want {
			t.Errorf("%+v.DefaultStore() = %s, want %s", c.eng, got, c.want)
		}
		if got, err := DecideStore("", "", c.eng); err != nil || got != c.want {
			t.Errorf("DecideStore for a fresh cache with %+v = %s, %v; want %s", c.eng, got, err, c.want)
		}
	}
	if e := EngineOfVersion("29.1.0"); !e.Features || e.Major != 29 {
		t.Errorf("EngineOfVersion(29.1.0) = %+v", e)
	}
}
