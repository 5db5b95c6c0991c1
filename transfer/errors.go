package transfer

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"

	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote/errcode"
)

// Registry failures callers act on differently (Push and Pull wrap them).
var (
	// ErrNotFound: the registry has no such repository, tag or blob.
	ErrNotFound = errors.New("not in the registry")
	// ErrAuth: the registry refused the credentials, or asked for some.
	ErrAuth = errors.New("registry refused access")
	// ErrNetwork: the registry could not be reached.
	ErrNetwork = errors.New("registry unreachable")
)

// classify wraps a registry error with the sentinel for its kind, so that
// errors.Is tells them apart; other errors are returned as they are.
func classify(err error) error {
	var resp *errcode.ErrorResponse
	var netErr net.Error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errdef.ErrNotFound):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case errors.As(err, &resp) && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden):
		return fmt.Errorf("%w: %w; log in (docker login) or check the credentials in the Docker config", ErrAuth, err)
	case errors.As(err, &resp) && resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case errors.As(err, &netErr), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return fmt.Errorf("%w: %w", ErrNetwork, err)
	}
	return err
}
