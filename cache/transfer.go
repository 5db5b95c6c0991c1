package cache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/dindstore/dindstore/volumes"
)

// ExportInfo describes a loop cache's image for a copy elsewhere (a push
// to a registry).
type ExportInfo struct {
	Key        string
	FS         volumes.FS
	CapBytes   int64
	BlockSize  uint32
	FSUUID     string
	ImageStore string
	Generation int
	// Source, when fn sets it, is recorded as what the image is now
	// (reference@digest of the artifact pushed): a pull of that artifact
	// into the key has nothing to do.
	Source string
}

// Export hands fn the image of the loop cache key, held quiet for as long
// as fn runs: under the cache's lock (marked busy, so that a use waits for
// it), the image itself locked, and only an idle cache whose last release
// was clean, neither damaged nor incomplete, with nothing mounted or
// attached — an image nothing writes and nothing needs to replay. A cache
// in use is ErrLocked.
func (r *Root) Export(ctx context.Context, key string, fn func(image *os.File, info *ExportInfo) error) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	l, err := r.lockBusy(ctx, key)
	if err != nil {
		return err
	}
	defer l.release()
	rec, err := r.readRecord(key)
	if err != nil {
		return err
	}
	if rec.Kind != volumes.Loop {
		return fmt.Errorf("%w: cache %q is a %s cache; only loop caches are images to copy", ErrInvalid, key, rec.Kind)
	}
	if err := r.quiet(rec); err != nil {
		return err
	}
	if !rec.ReleasedClean {
		return fmt.Errorf("%w: cache %q was not released cleanly (its filesystem may need its journal replayed); "+
			"use it once (dindstore run %s -- true) or repair it, then copy it", ErrInvalid, key, key)
	}
	image, err := r.holdImage(key)
	if err != nil {
		return err
	}
	defer image.Close()
	if err := r.checkImage(image, rec); err != nil {
		return err
	}
	info := ExportInfo{Key: key, FS: rec.FS, CapBytes: rec.CapBytes, BlockSize: rec.BlockSize,
		FSUUID: rec.FSUUID, ImageStore: rec.ImageStore, Generation: rec.Generation}
	if err := fn(image, &info); err != nil || info.Source == "" {
		return err
	}
	return r.updateRecord(key, func(rec *Record) { rec.Pulled = info.Source })
}

// clearForCreate clears what an earlier holder or a create that died left
// of key (its leftovers), and makes its mount point; the caller holds
// key's lock. Create and Import start with it.
func (r *Root) clearForCreate(ctx context.Context, key string) error {
	if _, err := r.repairLocked(ctx, key, repairOpts{}); err != nil {
		return err
	}
	if err := r.removeData(key); err != nil {
		return err
	}
	if err := os.Mkdir(r.MountPath(key), 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create mount point: %w", err)
	}
	return nil
}

// importedRecord reads and checks the filesystem a pull wrote into f,
// and makes the record of the cache key it becomes.
func (r *Root) importedRecord(key string, f *os.File, info ImportInfo) (*Record, error) {
	if _, err := volumes.ParseFS(string(info.FS)); err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	st, err := volumes.ReadStats(volumes.FDPath(f), info.FS)
	if err != nil {
		return nil, fmt.Errorf("the pulled image of %q: %w", key, err)
	}
	if st.SizeBytes != fi.Size() {
		return nil, fmt.Errorf("%w: the pulled image of %q is %d bytes, its %s filesystem %d", ErrInvalid, key,
			fi.Size(), info.FS, st.SizeBytes)
	}
	return &Record{Key: key, Kind: volumes.Loop, FS: info.FS, CapBytes: fi.Size(), BlockSize: st.AttachBlockSize(),
		FSUUID: st.UUID, ImageStore: info.ImageStore, Generation: info.Generation, Pulled: info.Source,
		Created: time.Now().UTC(), StorageDriver: volumes.Loop.StorageDriver(), ReleasedClean: true}, nil
}
