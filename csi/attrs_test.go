package csi

import (
	"errors"
	"strings"
	"testing"

	"github.com/dindstore/dindstore/volumes"
)

var testLimits = Limits{DefaultSize: 20 << 30, MaxSize: 100 << 30, Kinds: []volumes.Kind{volumes.Loop, volumes.Dir}}

func TestParseAttributesDefaults(t *testing.T) {
	req, err := ParseAttributes(map[string]string{
		attrPodNS: "ci", attrPodName: "runner-1", attrPodUID: "u1", attrEphemeral: "true",
		podInfoPrefix + "serviceAccount.name": "default",
	}, "", testLimits)
	if err != nil {
		t.Fatal(err)
	}
	if req.Spec.Kind != volumes.Loop || req.Spec.Size != 20<<30 || req.Spec.FS != volumes.Ext4 {
		t.Fatalf("defaults: %+v", req.Spec)
	}
	if req.Pod.String() != "ci/runner-1" || !req.Ephemeral {
		t.Fatalf("pod info: %+v", req)
	}
}

func TestParseAttributesValues(t *testing.T) {
	req, err := ParseAttributes(map[string]string{
		AttrSize: "50Gi", AttrKind: "loop", AttrFSType: "xfs", AttrCacheKey: "build-cache", attrPodNS: "ci",
	}, "xfs", testLimits)
	if err != nil {
		t.Fatal(err)
	}
	if req.Spec.Size != 50<<30 || req.Spec.FS != volumes.XFS || req.CacheKey != "build-cache" {
		t.Fatalf("%+v", req)
	}
	if k := namespacedKey(req.Pod.Namespace, req.CacheKey); k != "k8s.ci.build-cache" {
		t.Fatalf("key %q", k)
	}
}

// Attributes are untrusted: every bad one is refused with
// ErrInvalidAttribute, before anything is made.
func TestParseAttributesRefuses(t *testing.T) {
	for name, attrs := range map[string]map[string]string{
		"size above max":       {AttrSize: "101Gi"},
		"size not a quantity":  {AttrSize: "lots"},
		"size negative":        {AttrSize: "-1Gi"},
		"size fraction":        {AttrSize: "0.5"},
		"size below fs min":    {AttrSize: "1Mi"},
		"kind not allowed":     {AttrKind: "vfs"},
		"kind unknown":         {AttrKind: "../x"},
		"fsType unknown":       {AttrFSType: "ntfs"},
		"cacheKey a path":      {AttrCacheKey: "../../etc", attrPodNS: "ci"},
		"cacheKey upper":       {AttrCacheKey: "Build", attrPodNS: "ci"},
		"cacheKey too long":    {AttrCacheKey: strings.Repeat("a", 49), attrPodNS: "ci"},
		"cacheKey no ns":       {AttrCacheKey: "build"},
		"namespace bad":        {AttrCacheKey: "build", attrPodNS: "a/b"},
		"from a path":          {AttrFrom: "../warm"},
		"from a namespace's":   {AttrFrom: "k8s.other.build"},
		"from a volume's":      {AttrFrom: "csi.0123456789abcdef01234567"},
		"from and cacheKey":    {AttrFrom: "warm", AttrCacheKey: "build", attrPodNS: "ci"},
		"commit without from":  {AttrCommit: "true"},
		"commit not allowed":   {AttrFrom: "warm", AttrCommit: "true"},
		"commit not a bool":    {AttrFrom: "warm", AttrCommit: "yes"},
		"unknown attribute":    {"sise": "10Gi"},
		"value too long":       {AttrFrom: strings.Repeat("a", 129)},
		"fsType vs capability": {AttrFSType: "ext4", "x": ""},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseAttributes(attrs, "", testLimits); !errors.Is(err, ErrInvalidAttribute) {
				t.Fatalf("%v: got %v, want ErrInvalidAttribute", attrs, err)
			}
		})
	}
	if _, err := ParseAttributes(map[string]string{AttrFSType: "ext4"}, "xfs", testLimits); !errors.Is(err, ErrInvalidAttribute) {
		t.Fatalf("fsType disagreeing with the capability: %v", err)
	}
}

func TestVolumeKeyIsAValidKey(t *testing.T) {
	k := volumeKey(strings.Repeat("csi-0123456789abcdef", 20))
	if len(k) != 4+24 || !strings.HasPrefix(k, "csi.") {
		t.Fatalf("%q", k)
	}
	if volumeKey("a") == volumeKey("b") {
		t.Fatal("distinct ids, same key")
	}
}

func TestParseAttributesWarmKeys(t *testing.T) {
	lim := testLimits
	lim.WarmKeys = []string{"gha-warm"}
	if _, err := ParseAttributes(map[string]string{AttrFrom: "gha-warm"}, "", lim); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseAttributes(map[string]string{AttrFrom: "gitlab-p1-s0"}, "", lim); !errors.Is(err, ErrInvalidAttribute) {
		t.Fatalf("a key outside --warm-key: %v", err)
	}
}

// TestCheckWarmKeyRefusesPluginKeys: no volume's own cache, namespace's
// cacheKey or provisioned volume is a warm key (to clone or to keep pulled).
func TestCheckWarmKeyRefusesPluginKeys(t *testing.T) {
	for _, key := range []string{"csi.0123", "k8s.ci.build", provisionedKey("pvc-1"), "bad/key"} {
		if err := CheckWarmKey(key, nil); err == nil {
			t.Errorf("%s taken as a warm key", key)
		}
	}
	if err := CheckWarmKey("gha-warm", nil); err != nil {
		t.Error(err)
	}
}
