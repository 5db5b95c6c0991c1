package csi

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/dindstore/dindstore/cache"
	"github.com/dindstore/dindstore/volumes"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Volume attributes a pod's inline CSI volume may set.
const (
	// AttrSize is the cache's cap, a Kubernetes quantity ("20Gi").
	AttrSize = "size"
	// AttrKind is the cache's kind among those the plugin allows.
	AttrKind = "kind"
	// AttrFSType is the loop cache's filesystem (ext4, xfs).
	AttrFSType = "fsType"
	// AttrCacheKey names a persistent cache of the pod's namespace.
	AttrCacheKey = "cacheKey"
	// AttrFrom names a warm key the volume starts as a clone of.
	AttrFrom = "from"
	// AttrCommit ("true") makes the clone of AttrFrom the warm key's next
	// generation at unpublish, when the plugin allows commits.
	AttrCommit = "commit"
)

// Attributes the kubelet adds (podInfoOnMount, inline volumes).
const (
	podInfoPrefix = "csi.storage.k8s.io/"
	attrPodName   = podInfoPrefix + "pod.name"
	attrPodNS     = podInfoPrefix + "pod.namespace"
	attrPodUID    = podInfoPrefix + "pod.uid"
	attrEphemeral = podInfoPrefix + "ephemeral"
)

// ErrInvalidAttribute marks a volume attribute the plugin refuses.
var ErrInvalidAttribute = errors.New("invalid volume attribute")

// maxAttrLen bounds every attribute's value: none needs more.
const maxAttrLen = 128

// maxCacheKeyLen leaves room in a key for "k8s.", the namespace and a dot.
const maxCacheKeyLen = 48

// Limits are the plugin's bounds on what a pod may ask.
type Limits struct {
	// DefaultSize is the cap of a volume that sets no size.
	DefaultSize int64
	// MaxSize is the largest cap a volume may ask.
	MaxSize int64
	// Kinds are the cache kinds a volume may ask (the first is the
	// default); loop is the only one with a cap.
	Kinds []volumes.Kind
	// AllowCommit lets a volume's clone be committed back (AttrCommit).
	AllowCommit bool
	// WarmKeys, when set, are the only keys AttrFrom may name.
	WarmKeys []string
}

// Pod names the pod a volume is published for (from podInfoOnMount).
type Pod struct {
	Namespace, Name, UID string
}

// String is namespace/name, or "" when the kubelet gave no pod info.
func (p Pod) String() string {
	if p.Name == "" {
		return ""
	}
	return p.Namespace + "/" + p.Name
}

// Request is a publication's validated attributes.
type Request struct {
	// Spec is the cache asked for, defaults filled in.
	Spec cache.Spec
	// CacheKey is the persistent cache's name within the namespace ("":
	// a volume of the pod's own).
	CacheKey string
	// From is the warm key to clone ("" for none).
	From string
	// Commit asks for the clone to be committed back at unpublish.
	Commit bool
	// Pod is who asked.
	Pod Pod
	// Ephemeral says the kubelet marked the volume inline ephemeral.
	Ephemeral bool
	// explicit are the spec's fields the pod set (size, kind, fsType).
	explicit cache.Spec
}

// ParseAttributes validates a volume's attributes, and the fsType of its
// capability (capFS, "" when unset), against the limits. Nothing is made
// before it succeeds; every error wraps ErrInvalidAttribute.
func ParseAttributes(attrs map[string]string, capFS string, lim Limits) (Request, error) {
	var req Request
	for name, value := range attrs {
		if err := req.set(name, value, lim); err != nil {
			return Request{}, fmt.Errorf("%w: %s=%q: %w", ErrInvalidAttribute, name, truncate(value), err)
		}
	}
	if err := req.check(capFS, lim); err != nil {
		return Request{}, fmt.Errorf("%w: %w", ErrInvalidAttribute, err)
	}
	return req, nil
}

// ParseParameters validates a StorageClass's parameters (kind, fsType,
// from: as the inline attributes of those names) and the capability's
// fsType; the size is the claim's request. The provisioner's own keys
// (csi.storage.k8s.io/...) are passed over; any other is refused.
func ParseParameters(params map[string]string, capFS string, lim Limits) (Request, error) {
	attrs := map[string]string{}
	for name, value := range params {
		switch {
		case name == AttrKind, name == AttrFSType, name == AttrFrom:
			attrs[name] = value
		case strings.HasPrefix(name, podInfoPrefix):
		default:
			return Request{}, fmt.Errorf("%w: parameter %s: unknown: a StorageClass takes %s, %s and %s "+
				"(the claim's request is the size)", ErrInvalidAttribute, truncate(name), AttrKind, AttrFSType, AttrFrom)
		}
	}
	return ParseAttributes(attrs, capFS, lim)
}

// set parses one attribute.
func (req *Request) set(name, value string, lim Limits) error {
	if len(value) > maxAttrLen {
		return fmt.Errorf("longer than %d bytes", maxAttrLen)
	}
	var err error
	switch name {
	case AttrSize:
		req.explicit.Size, err = ParseSize(value, lim.MaxSize)
	case AttrKind:
		req.explicit.Kind, err = parseKind(value, lim.Kinds)
	case AttrFSType:
		req.explicit.FS, err = volumes.ParseFS(value)
	case AttrCacheKey:
		req.CacheKey, err = value, checkLabel(value, maxCacheKeyLen)
	case AttrFrom:
		req.From, err = value, checkWarmKey(value, lim.WarmKeys)
	case AttrCommit:
		req.Commit, err = parseBool(value)
	default:
		return req.setPodInfo(name, value)
	}
	return err
}

// setPodInfo takes what the kubelet adds; any other name is refused (a
// typo would otherwise be silently ignored).
func (req *Request) setPodInfo(name, value string) error {
	switch name {
	case attrPodName:
		req.Pod.Name = value
	case attrPodNS:
		req.Pod.Namespace = value
		return checkLabel(value, 63)
	case attrPodUID:
		req.Pod.UID = value
	case attrEphemeral:
		req.Ephemeral = value == "true"
	default:
		if strings.HasPrefix(name, podInfoPrefix) {
			return nil // other pod information (serviceAccount.name...)
		}
		return fmt.Errorf("unknown attribute: the plugin takes %s, %s, %s, %s, %s and %s",
			AttrSize, AttrKind, AttrFSType, AttrCacheKey, AttrFrom, AttrCommit)
	}
	return nil
}

// check validates the attributes together and fills in the defaults.
func (req *Request) check(capFS string, lim Limits) error {
	if capFS != "" {
		fs, err := volumes.ParseFS(capFS)
		if err != nil {
			return fmt.Errorf("the volume capability's fsType: %w", err)
		}
		if req.explicit.FS != "" && req.explicit.FS != fs {
			return fmt.Errorf("fsType %s disagrees with the volume capability's %s", req.explicit.FS, fs)
		}
		req.explicit.FS = fs
	}
	switch {
	case req.CacheKey != "" && req.From != "":
		return fmt.Errorf("%s and %s exclude each other: a clone is the pod's own", AttrCacheKey, AttrFrom)
	case req.CacheKey != "" && req.Pod.Namespace == "":
		return fmt.Errorf("%s needs the pod's namespace: the CSIDriver must set podInfoOnMount", AttrCacheKey)
	case req.Commit && req.From == "":
		return fmt.Errorf("%s needs %s", AttrCommit, AttrFrom)
	case req.Commit && !lim.AllowCommit:
		return fmt.Errorf("%s: this plugin does not commit clones back (--allow-commit)", AttrCommit)
	}
	req.Spec = req.explicit
	if req.Spec.Kind == "" && len(lim.Kinds) > 0 {
		req.Spec.Kind = lim.Kinds[0]
	}
	if req.Spec.Size == 0 {
		req.Spec.Size = lim.DefaultSize
	}
	if req.Spec.FS == "" {
		req.Spec.FS = volumes.Ext4
	}
	return req.Spec.Validate()
}

// ParseSize reads a Kubernetes quantity of bytes ("20Gi", "500M"), at
// most max (when max > 0).
func ParseSize(s string, max int64) (int64, error) {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return 0, err
	}
	n, ok := q.AsInt64()
	switch {
	case !ok || n <= 0:
		return 0, errors.New("want a positive whole number of bytes, such as 20Gi")
	case max > 0 && n > max:
		return 0, fmt.Errorf("above this plugin's maximum of %s", resource.NewQuantity(max, resource.BinarySI))
	}
	return n, nil
}

// pluginPrefixes start the keys the plugin makes: a volume's own cache,
// a namespace's cacheKey, a provisioned volume and a snapshot, never a
// warm key a pod may clone (another namespace's cache would leak through it).
var pluginPrefixes = []string{"csi.", "k8s.", pvPrefix, snapPrefix}

// checkWarmKey accepts a cache key that is no volume's or namespace's, and
// among allowed when the plugin names them.
func checkWarmKey(key string, allowed []string) error {
	return CheckWarmKey(key, allowed)
}

// CheckWarmKey refuses a key that is not a warm cache a volume may clone
// or the plugin may keep pulled: invalid, one of the plugin's own volumes
// (csi., k8s., pv., snap.), or not among allowed (when set).
func CheckWarmKey(key string, allowed []string) error {
	if err := cache.ValidateKey(key); err != nil {
		return err
	}
	for _, p := range pluginPrefixes {
		if strings.HasPrefix(key, p) {
			return fmt.Errorf("keys starting with %q are the plugin's volumes, not warm caches", p)
		}
	}
	if len(allowed) > 0 && !slices.Contains(allowed, key) {
		return fmt.Errorf("this plugin clones only %v", allowed)
	}
	return nil
}

// parseKind reads a kind among the allowed ones.
func parseKind(s string, allowed []volumes.Kind) (volumes.Kind, error) {
	for _, k := range allowed {
		if string(k) == s {
			return k, nil
		}
	}
	return "", fmt.Errorf("this plugin allows %v", allowed)
}

// parseBool takes "true" or "false" only.
func parseBool(s string) (bool, error) {
	switch s {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, errors.New(`want "true" or "false"`)
}

// checkLabel accepts a DNS label of at most max bytes: [a-z0-9], with '-'
// inside.
func checkLabel(s string, max int) error {
	ok := len(s) > 0 && len(s) <= max && s[0] != '-' && s[len(s)-1] != '-'
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-'
	}
	if !ok {
		return fmt.Errorf("want 1-%d characters of a-z, 0-9 and '-', not starting or ending with '-'", max)
	}
	return nil
}

// truncate keeps an untrusted value short in messages.
func truncate(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}
