package csi

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/dindstore/dindstore/cache"
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
