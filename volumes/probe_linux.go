package volumes

import (
	"fmt"
	"os"

	"github.com/dindstore/dindstore/loopdev"
	"github.com/dindstore/dindstore/overlay"
)

// CheckDir tells whether dir can back a dir cache: a filesystem that keeps
// its data (not tmpfs), is not itself overlay, and where a real two-lower
// overlay mount works. The error wraps ErrNotSupported with the reason.
func CheckDir(dir string) error {
	r, err := overlay.Probe(dir)
	if err != nil {
		return err
	}
	switch r.FSType {
	case "tmpfs", "ramfs":
		return fmt.Errorf("%w: %s is on %s, which lives in memory and is lost at reboot; use --kind loop or another --root",
			ErrNotSupported, dir, r.FSType)
	}
	if err := r.Err(); err != nil {
		return fmt.Errorf("%w: %w; use --kind loop, or --kind vfs as a last resort", ErrNotSupported, err)
	}
	return nil
}

// LoopWorks tells whether a loop device can really be attached here, by
// attaching a small sparse scratch file in dir and letting it go again.
func LoopWorks(dir string) error {
	f, err := os.CreateTemp(dir, ".loop-probe-")
	if err != nil {
		return fmt.Errorf("loop probe in %s: %w", dir, err)
	}
	defer os.Remove(f.Name())
	err = f.Truncate(1 << 20)
	f.Close()
	if err != nil {
		return fmt.Errorf("loop probe in %s: %w", dir, err)
	}
	dev, err := loopdev.Attach(f.Name(), loopdev.Params{Tag: "dindstore-probe"})
	if err != nil {
		return err
	}
	return dev.Close() // autoclear detaches it
}

// Decide resolves --kind auto with real probes in dir (a directory on the
// filesystem that would hold the cache): loop if a loop device attaches, else
// dir if overlay works there, else vfs.
func Decide(dir string) Decision {
	var d Decision
	if err := LoopWorks(dir); err == nil {
		d.Kind = Loop
		return d
	} else {
		d.Why = append(d.Why, "loop: "+err.Error())
	}
	if err := CheckDir(dir); err == nil {
		d.Kind = Dir
		return d
	} else {
		d.Why = append(d.Why, "dir: "+err.Error())
	}
	d.Kind = VFS
	return d
}
