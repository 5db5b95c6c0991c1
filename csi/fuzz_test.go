package csi

import (
	"strings"
	"testing"

	"github.com/dindstore/dindstore/cache"
)

// FuzzParseAttributes feeds the attribute parser what a pod's author may
// write: it never panics, and what it accepts stays inside the limits and
// names only valid keys that are no path.
func FuzzParseAttributes(f *testing.F) {
	for _, seed := range [][3]string{
		{"size", "20Gi", ""}, {"cacheKey", "build", "ci"}, {"from", "warm", ""}, {"size", "1e3Mi", ""},
		{"cacheKey", "../../etc", "ci"}, {"from", "k8s.x.y", ""}, {"fsType", "xfs", ""}, {"size", "9Ei", ""},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	f.Fuzz(func(t *testing.T, name, value, namespace string) {
		attrs := map[string]string{name: value, attrPodNS: namespace}
		req, err := ParseAttributes(attrs, "", testLimits)
		if err != nil {
			return
		}
		if req.Spec.Size <= 0 || req.Spec.Size > testLimits.MaxSize {
			t.Fatalf("size %d accepted outside (0, %d]", req.Spec.Size, testLimits.MaxSize)
		}
		if req.CacheKey != "" {
			key := namespacedKey(req.Pod.Namespace, req.CacheKey)
			if err := cache.ValidateKey(key); err != nil || strings.ContainsAny(key, "/\x00") {
				t.Fatalf("cacheKey %q in %q makes key %q: %v", req.CacheKey, req.Pod.Namespace, key, err)
			}
		}
		if req.From != "" && (cache.ValidateKey(req.From) != nil || strings.HasPrefix(req.From, "k8s.") || strings.HasPrefix(req.From, "csi.")) {
			t.Fatalf("from %q accepted", req.From)
		}
	})
}
