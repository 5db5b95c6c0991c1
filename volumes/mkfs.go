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

// kernelVersion is a parsed kernel release, e.g. {6, 18} of 6.18.44-fc.
type kernelVersion [2]int

var kernelVersionRE = regexp.MustCompile(`^(\d+)\.(\d+)`)

// parseKernelVersion reads major and minor from a uname release string. An
// unparsable release gives the zero version, so no newer feature is assumed.
func parseKernelVersion(release string) kernelVersion {
	m := kernelVersionRE.FindStringSubmatch(release)
	if m == nil {
		return kernelVersion{}
	}
	maj, _ := strconv.Atoi(m[1])
	min, _ := strconv.Atoi(m[2])
	return kernelVersion{maj, min}
}

func (k kernelVersion) atLeast(o kernelVersion) bool {
	return k[0] > o[0] || (k[0] == o[0] && k[1] >= o[1])
}

// ext4Features are features of newer mke2fs defaults that older kernels
// cannot mount read-write, with the e2fsprogs version that knows each and
// the kernel that first supports it. A feature the running kernel predates
// is turned off. (/sys/fs/ext4/features cannot tell: it lists only some.)
var ext4Features = []struct {
	name   string
	since  e2fsVersion
	kernel kernelVersion
}{
	{"orphan_file", e2fsVersion{1, 47, 0}, kernelVersion{5, 15}},
	{"metadata_csum_seed", e2fsVersion{1, 43, 0}, kernelVersion{4, 4}},
}

// ext4Args builds the mkfs.ext4 arguments for a sparse image: no root
// reserve, a root-owned root directory, lazy inode tables and journal (and
// assume_storage_prezeroed where mke2fs knows it, so that nothing zeroes the
// tables later), and no feature the running kernel cannot mount.
//
// Two more choices keep the host allocation small and flat as the size
// grows: sparse_super2 keeps two backup superblocks and group descriptor
// tables instead of one per 3^n/5^n/7^n group (8 MiB at 1 TiB), and no
// resize_inode (4 MiB of reserved descriptor blocks at any size). resize2fs
// grows such a filesystem offline, and the kernel online (meta_bg resize,
// Linux 3.7 and later).
func ext4Args(v e2fsVersion, k kernelVersion, image string) []string {
	ext := "root_owner=0:0,lazy_itable_init=1,lazy_journal_init=1,nodiscard"
	if v.atLeast(e2fsVersion{1, 47, 0}) {
		ext += ",assume_storage_prezeroed=1"
	}
	args := []string{"-q", "-F", "-m", "0", "-E", ext}
	var features []string
	if v.atLeast(e2fsVersion{1, 43, 0}) {
		features = append(features, "sparse_super2", "^resize_inode")
	}
	for _, f := range ext4Features {
		if v.atLeast(f.since) && !k.atLeast(f.kernel) {
			features = append(features, "^"+f.name)
		}
	}
	if len(features) > 0 {
		args = append(args, "-O", strings.Join(features, ","))
	}
	return append(args, image)
}

// xfsArgs builds the mkfs.xfs arguments: no discard pass, the file is sparse
// already. (xfsprogs 5.1 and later turn reflink on by default.)
func xfsArgs(image string) []string {
	return []string{"-q", "-f", "-K", image}
}
