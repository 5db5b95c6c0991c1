package volumes

import (
	"slices"
	"strings"
	"testing"
)

func TestParseE2fsVersion(t *testing.T) {
	v, err := parseE2fsVersion("mke2fs 1.47.0 (5-Feb-2023)\n\tUsing EXT2FS Library version 1.47.0\n")
	if err != nil || v != (e2fsVersion{1, 47, 0}) {
		t.Fatalf("got %v, %v", v, err)
	}
	if v, _ := parseE2fsVersion("mke2fs 1.46 (x)"); v != (e2fsVersion{1, 46, 0}) {
		t.Fatalf("got %v", v)
	}
	if _, err := parseE2fsVersion("garbage"); err == nil {
		t.Fatal("parsed garbage")
	}
}

func TestExt4Args(t *testing.T) {
	all := func(string) bool { return true }
	none := func(string) bool { return false }
	args := ext4Args(e2fsVersion{1, 47, 0}, all, "/img")
	joined := strings.Join(args, " ")
	for _, want := range []string{"-m 0", "root_owner=0:0", "lazy_journal_init=1", "assume_storage_prezeroed=1"} {
		if !strings.Contains(joined, want) {
			t.Errorf("args %q lack %q", joined, want)
		}
	}
	if slices.Contains(args, "-O") {
		t.Errorf("kernel has every feature, yet features are turned off: %q", joined)
	}
	old := strings.Join(ext4Args(e2fsVersion{1, 46, 5}, none, "/img"), " ")
	if strings.Contains(old, "assume_storage_prezeroed") || strings.Contains(old, "orphan_file") {
		t.Errorf("1.46 args use options it does not know: %q", old)
	}
	if !strings.Contains(old, "^metadata_csum_seed") {
		t.Errorf("1.46 args keep a feature the kernel lacks: %q", old)
	}
	if args[len(args)-1] != "/img" {
		t.Errorf("image is not the last argument: %q", joined)
	}
}
