package volumes

import "github.com/dindstore/dindstore/loopdev"

// LoopInfo describes a bound loop device (see loopdev.Info): what callers
// of volumes see of loop devices, so that they need not know loopdev.
type LoopInfo = loopdev.Info

// LoopTag builds the tag a loop device is attached with: prefix + name,
// cut to what the kernel keeps.
func LoopTag(prefix, name string) string { return loopdev.Tag(prefix, name) }
