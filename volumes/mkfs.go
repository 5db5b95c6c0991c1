package volumes

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// e2fsVersion is a parsed e2fsprogs version, e.g. {1, 47, 0}.
type e2fsVersion [3]int

var e2fsVersionRE = regexp.MustCompile(`mke2fs (\d+)\.(\d+)(?:\.(\d+))?`)

// parseE2fsVersion reads the version from `mke2fs -V` output.
func parseE2fsVersion(out string) (e2fsVersion, error) {
	m := e2fsVersionRE.FindStringSubmatch(out)
	if m == nil {
		return e2fsVersion{}, fmt.Errorf("no mke2fs version in %q", strings.TrimSpace(out))
	}
	var v e2fsVersion
	for i := 0; i < 3; i++ {
		v[i], _ = strconv.Atoi(m[i+1])
	}
	return v, nil
}

func (v e2fsVersion) atLeast(o e2fsVersion) bool {
	for i := range v {
		if v[i] != o[i] {
			return v[i] > o[i]
		}
	}
	return true
}

// ext4Features are the default-on features of newer mke2fs that an older
// kernel cannot mount, with the e2fsprogs version that knows each one. A
// feature the kernel lacks (no /sys/fs/ext4/features/<name>) is turned off.
var ext4Features = []struct {
	name  string
	since e2fsVersion
}{
	{"orphan_file", e2fsVersion{1, 47, 0}},
	{"metadata_csum_seed", e2fsVersion{1, 43, 0}},
}

// ext4Args builds the mkfs.ext4 arguments for a sparse image: no root
// reserve, a root-owned root directory, lazy inode tables and journal (and
// assume_storage_prezeroed where mke2fs knows it, so that nothing zeroes the
// tables later), and no feature the running kernel cannot mount.
// kernelHas reports whether the kernel supports a named ext4 feature.
func ext4Args(v e2fsVersion, kernelHas func(string) bool, image string) []string {
	ext := "root_owner=0:0,lazy_itable_init=1,lazy_journal_init=1,nodiscard"
	if v.atLeast(e2fsVersion{1, 47, 0}) {
		ext += ",assume_storage_prezeroed=1"
	}
	args := []string{"-q", "-F", "-m", "0", "-E", ext}
	var off []string
	for _, f := range ext4Features {
		if v.atLeast(f.since) && !kernelHas(f.name) {
			off = append(off, "^"+f.name)
		}
	}
	if len(off) > 0 {
		args = append(args, "-O", strings.Join(off, ","))
	}
	return append(args, image)
}

// xfsArgs builds the mkfs.xfs arguments: no discard pass, the file is sparse
// already. (xfsprogs 5.1 and later turn reflink on by default.)
func xfsArgs(image string) []string {
	return []string{"-q", "-f", "-K", image}
}
