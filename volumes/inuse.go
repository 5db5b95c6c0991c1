package volumes

import (
	"fmt"
	"strings"

	"github.com/dindstore/dindstore/procscan"
)

// ImageInUseError says that an image (or a dir cache's directory) is still
// used and by whom.
type ImageInUseError struct{ Use *ImageUse }

func (e *ImageInUseError) Error() string {
	u := e.Use
	if len(u.Devices) == 0 {
		return fmt.Sprintf("%s is still in use: used by %s", u.Image, procscan.Describe(u.Users, 5))
	}
	msg := fmt.Sprintf("image %s is still in use: bound to %s", u.Image, strings.Join(u.Devices, ", "))
	if len(u.Users) > 0 {
		msg += "; used by " + procscan.Describe(u.Users, 5)
	} else {
		msg += " with no process found holding it (a mount namespace kept alive by a bind mount of its ns file?)"
	}
	return msg
}

// Unwrap makes errors.Is(err, ErrInUse) true.
func (e *ImageInUseError) Unwrap() error { return ErrInUse }
