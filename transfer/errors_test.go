package transfer

import (
	"errors"
	"fmt"
	"net"
	"testing"

	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote/errcode"
)

// TestClassify: registry failures get the sentinel their callers act on.
func TestClassify(t *testing.T) {
	cases := []struct {
		err  error
		want error
	}{
		{fmt.Errorf("resolve x: %w", errdef.ErrNotFound), ErrNotFound},
		{&errcode.ErrorResponse{StatusCode: 401}, ErrAuth},
		{&errcode.ErrorResponse{StatusCode: 403}, ErrAuth},
		{&errcode.ErrorResponse{StatusCode: 404}, ErrNotFound},
		{fmt.Errorf("push: %w", &net.OpError{Op: "dial", Err: errors.New("connection refused")}), ErrNetwork},
	}
	for _, c := range cases {
		if got := classify(c.err); !errors.Is(got, c.want) {
			t.Errorf("classify(%v) = %v, want %v", c.err, got, c.want)
		}
	}
	if other := errors.New("other"); classify(other) != other || classify(nil) != nil {
		t.Error("classify changed an error of no registry kind")
	}
}
