package csi

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/dindstore/dindstore/cache"
	"github.com/dindstore/dindstore/volumes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The kubelet acts on the code: each failure of a publication maps to the
// one the CSI spec gives it, and a busy cacheKey names the pod holding it.
func TestToStatus(t *testing.T) {
	p := &publication{VolumeID: "v", Key: "k8s.ci.build"}
	held := &cache.HeldError{Key: p.Key, PID: 7, Owner: &cache.Owner{PID: 7,
		Command: []string{"dindstore-csi", "volume=x", "target=/t", "pod=ci/runner-1", "uid=u"}}}
	for err, want := range map[error]codes.Code{
		fmt.Errorf("acquire: %w", held):                codes.FailedPrecondition,
		&cache.NoRoomError{Key: p.Key}:                 codes.ResourceExhausted,
		fmt.Errorf("%w: size", cache.ErrInvalid):       codes.InvalidArgument,
		fmt.Errorf("%w: superblock", cache.ErrDamaged): codes.FailedPrecondition,
		fmt.Errorf("%w: pid 9", cache.ErrInUse):        codes.FailedPrecondition,
		errors.New("mkfs failed"):                      codes.Internal,
	} {
		if got := status.Code(toStatus(err, p)); got != want {
			t.Errorf("%v: %v, want %v", err, got, want)
		}
	}
	if msg := status.Convert(toStatus(held, p)).Message(); !strings.Contains(msg, "by pod ci/runner-1") {
		t.Errorf("the holder pod is not named: %q", msg)
	}
}

// TestPublishWaitsForWarming: a volume from a warm key in its first pull
// is UNAVAILABLE (the kubelet retries), naming the key and how far the
// pull is; other keys and volumes without from are not held up.
func TestPublishWaitsForWarming(t *testing.T) {
	d := New(&cache.Root{}, Config{Limits: Limits{DefaultSize: 1 << 30, MaxSize: 1 << 30, Kinds: []volumes.Kind{volumes.Loop}},
		Warming: func(key string) (string, bool) { return "pulling r/base:1: 3 of 9 MiB", key == "base" }})
	req := func(from string) *csi.NodePublishVolumeRequest {
		attrs := map[string]string{}
		if from != "" {
			attrs[AttrFrom] = from
		}
		return &csi.NodePublishVolumeRequest{VolumeId: "v", TargetPath: "/t", VolumeContext: attrs,
			VolumeCapability: &csi.VolumeCapability{
				AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
				AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER}}}
	}
	_, err := d.checkPublish(req("base"))
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), `"base"`) || !strings.Contains(err.Error(), "3 of 9 MiB") {
		t.Fatalf("a volume from a warming key: %v, want UNAVAILABLE naming it and its progress", err)
	}
	for _, from := range []string{"other", ""} {
		if _, err := d.checkPublish(req(from)); err != nil {
			t.Errorf("a volume from %q: %v", from, err)
		}
	}
}
