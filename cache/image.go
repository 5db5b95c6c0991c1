package cache

import (
	"errors"
	"fmt"
	"os"

	"github.com/dindstore/dindstore/volumes"
	"golang.org/x/sys/unix"
)

// ErrImageMissing means a loop cache's record names an image that is not
// there: it was deleted behind dindstore's back. It is damage (ErrDamaged).
var ErrImageMissing = fmt.Errorf("%w: image missing", ErrDamaged)

// openImage opens the loop image of key read-write, beneath the root
// without following any link (see open), and refuses anything but a
// regular file of this user with one name: a hard link from outside the
// root would let a write to the image reach a file dindstore never made.
// A missing image is ErrImageMissing.
func (r *Root) openImage(key string) (*os.File, error) {
	path := r.imagePath(key)
	f, err := r.open(path, unix.O_RDWR|unix.O_NONBLOCK, 0)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("cache %q: %w: %s is gone (deleted behind dindstore's back?); remove the cache "+
			"(dindstore rm %s) and create it again", key, ErrImageMissing, path, key)
	case errors.Is(err, unix.ENXIO), errors.Is(err, unix.EISDIR):
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrInvalid, path)
	case err != nil:
		return nil, err
	}
	if err := checkImageFile(f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// checkImageFile refuses an image that is not a regular file of this user
// with exactly one link.
func checkImageFile(f *os.File) error {
	if err := checkOwnedRegular(f); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	if st.Nlink != 1 {
		return fmt.Errorf("%w: %s has %d hard links (inode %d): dindstore made it with one, and a link from elsewhere "+
			"would let another root or a file outside the root share it; remove the other links", ErrInvalid,
			f.Name(), st.Nlink, st.Ino)
	}
	return nil
}

// holdImage is openImage plus an exclusive flock on the image itself, which
// the caller keeps for as long as it attaches, checks or changes the image
// (a lease: until its release). The lock belongs to the inode: two roots,
// a bind mount of one root's image into another, or any two opens of the
// same file can never both hold it, so the image is attached once, even
// by commands started at the same instant. Another holder is ErrInUse.
func (r *Root) holdImage(key string) (*os.File, error) {
	f, err := r.openImage(key)
	if err != nil {
		return nil, err
	}
	for err = unix.EINTR; errors.Is(err, unix.EINTR); {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	}
	if err == nil {
		return f, nil
	}
	f.Close()
	if errors.Is(err, unix.EWOULDBLOCK) {
		return nil, fmt.Errorf("%w: the image %s of cache %q is held by another dindstore process (the same file "+
			"reached from another root or through a bind mount): one image serves one daemon; wait for it to end",
			ErrInUse, r.imagePath(key), key)
	}
	return nil, fmt.Errorf("lock image %s: %w", r.imagePath(key), err)
}

// errGrowCut marks an image longer than its recorded cap: a grow that died
// after extending the file, which recover completes or undoes.
var errGrowCut = errors.New("a grow was cut short")

// checkAgainstRecord compares the opened image with its record: shorter
// than the recorded cap, or holding a filesystem larger than the file, it
// was changed behind dindstore's back and is ErrDamaged, naming what
// differs (never "undone": the lost part would come back as zeros). Longer
// than the cap is errGrowCut.
func (r *Root) checkAgainstRecord(image *os.File, rec *Record) error {
	fi, err := image.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", image.Name(), err)
	}
	size := fi.Size()
	if size < rec.CapBytes {
		return fmt.Errorf("%w: the image %s is %d bytes, but cache %q was made with %d: it was cut short behind "+
			"dindstore's back and what lay past %d bytes is lost; remove the cache (dindstore rm %s)",
			ErrDamaged, image.Name(), size, rec.Key, rec.CapBytes, size, rec.Key)
	}
	if st, err := volumes.ReadStats(volumes.FDPath(image), rec.FS); err == nil && st.SizeBytes > size {
		return fmt.Errorf("%w: the %s filesystem in %s is %d bytes but the file only %d: the image was changed "+
			"behind dindstore's back; remove the cache (dindstore rm %s)", ErrDamaged, rec.FS, image.Name(),
			st.SizeBytes, size, rec.Key)
	} else if err == nil && rec.FSUUID != "" && st.UUID != rec.FSUUID {
		return fmt.Errorf("%w: %s holds another filesystem (uuid %s) than cache %q was made with (uuid %s): it was "+
			"replaced behind dindstore's back; remove the cache (dindstore rm %s)", ErrDamaged, image.Name(), st.UUID,
			rec.Key, rec.FSUUID, rec.Key)
	}
	if size > rec.CapBytes {
		return fmt.Errorf("cache %q: the image is %d bytes, its cap %d: %w", rec.Key, size, rec.CapBytes, errGrowCut)
	}
	return nil
}

// recordDamage marks key damaged for the reason damage gives (the marker
// first: it needs no room), so that every use refuses it until `repair` or
// `rm`, and returns damage joined with what could not be recorded.
func (r *Root) recordDamage(key string, damage error) error {
	return errors.Join(damage, r.noteDamage(key, damage))
}

// noteDamage is recordDamage's recording alone: nil once it is recorded.
func (r *Root) noteDamage(key string, damage error) error {
	merr := r.markDamaged(key)
	return errors.Join(merr, r.updateRecord(key, func(rec *Record) {
		rec.Damaged, rec.ReleasedClean = problem(damage, nil), false
	}))
}
