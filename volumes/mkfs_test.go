package volumes

import (
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

func TestParseKernelVersion(t *testing.T) {
	if k := parseKernelVersion("6.18.44-fc-v445"); k != (kernelVersion{6, 18}) {
		t.Fatalf("got %v", k)
	}
	if k := parseKernelVersion("junk"); k != (kernelVersion{}) {
		t.Fatalf("got %v", k)
	}
	if !(kernelVersion{5, 15}).atLeast(kernelVersion{5, 15}) || (kernelVersion{5, 4}).atLeast(kernelVersion{5, 15}) ||
		!(kernelVersion{6, 0}).atLeast(kernelVersion{5, 15}) {
		t.Fatal("atLeast wrong")
	}
}

func TestExt4Args(t *testing.T) {
	newKernel, oldKernel := kernelVersion{6, 18}, kernelVersion{4, 19}
	args := ext4Args(e2fsVersion{1, 47, 0}, newKernel, "/img")
	joined := strings.Join(args, " ")
	for _, want := range []string{"-m 0", "root_owner=0:0", "lazy_journal_init=1", "assume_storage_prezeroed=1",
		"sparse_super2", "^resize_inode"} {
		if !strings.Contains(joined, want) {
			t.Errorf("args %q lack %q", joined, want)
		}
	}
	if strings.Contains(joined, "^orphan_file") || strings.Contains(joined, "^metadata_csum_seed") {
		t.Errorf("a new kernel gets features turned off: %q", joined)
	}
	old := strings.Join(ext4Args(e2fsVersion{1, 46, 5}, oldKernel, "/img"), " ")
	if strings.Contains(old, "assume_storage_prezeroed") || strings.Contains(old, "orphan_file") {
		t.Errorf("1.46 args use options it does not know: %q", old)
	}
	if strings.Contains(old, "^metadata_csum_seed") {
		t.Errorf("4.19 supports metadata_csum_seed, yet it is turned off: %q", old)
	}
	if o := strings.Join(ext4Args(e2fsVersion{1, 47, 0}, kernelVersion{5, 10}, "/img"), " "); !strings.Contains(o, "^orphan_file") {
		t.Errorf("5.10 cannot mount orphan_file read-write, yet it stays: %q", o)
	}
	if args[len(args)-1] != "/img" {
		t.Errorf("image is not the last argument: %q", joined)
	}
}
