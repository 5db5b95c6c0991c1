package cache

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dindstore/dindstore/volumes"
	"github.com/docker/go-units"
)

// DefaultKeepFree is the admission floor when none is given: the share of
// the host filesystem that caches in use may never claim.
const DefaultKeepFree = 0.05

// ErrNoRoom means admission refused a loop cache: what the caches in use
// may still write would not fit in the host's free space above the floor.
var ErrNoRoom = errors.New("not enough room on the host")

// Room is the admission arithmetic for one host filesystem.
type Room struct {
	// Host is the directory whose filesystem holds the images.
	Host string `json:"host"`
	// FreeBytes and SizeBytes are the host filesystem's (statfs).
	FreeBytes int64 `json:"free_bytes"`
	SizeBytes int64 `json:"size_bytes"`
	// FloorBytes is the part of the host kept free (keep-free × size).
	FloorBytes int64 `json:"floor_bytes"`
	// CommittedBytes is the sum over caches in use (this one included) of
	// cap − allocated: what they may still write.
	CommittedBytes int64 `json:"committed_bytes"`
	// InUse names the caches counted.
	InUse []string `json:"in_use"`
}

// Fits reports whether the committed bytes fit above the floor.
func (m Room) Fits() bool { return m.CommittedBytes <= m.FreeBytes-m.FloorBytes }

// NoRoomError is ErrNoRoom with the figures.
type NoRoomError struct {
	Key  string
	Room Room
}

func (e *NoRoomError) Error() string {
	m := e.Room
	return fmt.Sprintf("cache %q not admitted: the caches in use (%s) may still write %s, but %s has %s free "+
		"and %s of it must stay free (keep-free); prune idle caches (dindstore prune), use a smaller cap, "+
		"or pass --overcommit to accept the risk of a full host", e.Key, strings.Join(m.InUse, ", "),
		units.BytesSize(float64(m.CommittedBytes)), m.Host, units.BytesSize(float64(m.FreeBytes)),
		units.BytesSize(float64(m.FloorBytes)))
}

// Unwrap makes errors.Is(err, ErrNoRoom) true.
func (e *NoRoomError) Unwrap() error { return ErrNoRoom }

// admit checks that a loop cache may be mounted for use: the sum over the
// caches in use (held, or with a loop device still bound), this one
// included since the caller holds its lock, and the caches promised
// (opts.Promised), of cap − exclusive (the blocks the image holds alone:
// a block it shares with a reflinked clone or generation is copied when
// written, so it is still to come) must fit in the host filesystem's free
// space minus the floor. The caller holds the cache's lock, so two
// holders racing both count each other.
func (r *Root) admit(rec *Record, opts AcquireOptions) error {
	if rec.Kind != volumes.Loop || opts.Overcommit {
		return nil
	}
	room, err := r.Room(opts.KeepFree, append([]string{rec.Key}, opts.Promised...)...)
	if err != nil {
		return fmt.Errorf("admit cache %q: %w", rec.Key, err)
	}
	if !room.Fits() {
		return &NoRoomError{Key: rec.Key, Room: room}
	}
	return nil
}

// Room computes the admission figures with keepFree as the floor (0:
// DefaultKeepFree); the caches named in also count as in use.
func (r *Root) Room(keepFree float64, also ...string) (Room, error) {
	if keepFree <= 0 {
		keepFree = DefaultKeepFree
	}
	host := filepath.Join(r.path, "images")
	free, size, _, _, err := r.hostStat()
	if err != nil {
		return Room{}, err
	}
	m := Room{Host: host, FreeBytes: free, SizeBytes: size, FloorBytes: int64(keepFree * float64(size))}
	keys, err := r.inUseKeys(also)
	if err != nil {
		return Room{}, err
	}
	for _, key := range keys {
		rec, err := r.readRecord(key)
		if err != nil {
			continue
		}
		if still, ok := r.stillToWrite(rec); ok {
			m.CommittedBytes += still
			m.InUse = append(m.InUse, key)
		}
	}
	return m, nil
}

// stillToWrite is what a loop cache may still take from the host: its cap
// less the blocks it holds alone; false for other kinds, or when its
// image cannot be read.
func (r *Root) stillToWrite(rec *Record) (int64, bool) {
	if rec.Kind != volumes.Loop {
		return 0, false
	}
	own, err := exclusiveBytes(r.imagePath(rec.Key))
	if err != nil {
		return 0, false
	}
	return max(rec.CapBytes-own, 0), true
}

// copyFits refuses a copy of need bytes of src that would take the host
// below its keep-free floor (DefaultKeepFree) with what the caches in use
// may still write; src is locked for the copy, not in use.
func (r *Root) copyFits(src *Record, need int64) error {
	m, err := r.Room(0)
	if err != nil {
		return fmt.Errorf("room for a copy of %q: %w", src.Key, err)
	}
	if still, ok := r.stillToWrite(src); ok && slices.Contains(m.InUse, src.Key) {
		m.CommittedBytes -= still
	}
	if avail := m.FreeBytes - m.FloorBytes - m.CommittedBytes; need > avail {
		return fmt.Errorf("%w: a copy of cache %q takes %s, and %s has %s above keep-free and what the caches "+
			"in use may still write; prune idle caches (dindstore prune), or keep caches on a reflink host (xfs, btrfs)",
			ErrNoRoom, src.Key, units.BytesSize(float64(need)), m.Host, units.BytesSize(float64(max(avail, 0))))
	}
	return nil
}

// inUseKeys lists the keys whose lock is held or whose image a loop device
// is still bound to, plus also.
func (r *Root) inUseKeys(also []string) ([]string, error) {
	keys, err := r.recordKeys()
	if err != nil {
		return nil, err
	}
	flocks, err := readFlocks()
	if err != nil {
		return nil, err
	}
	bound, err := volumes.BoundImages(filepath.Join(r.path, "images"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, key := range keys {
		held, _, _, _ := r.holder(key, flocks)
		if held || len(bound[r.imagePath(key)]) > 0 || slices.Contains(also, key) {
			out = append(out, key)
		}
	}
	return out, nil
}

// TotalCaps sums the caps of every loop cache and gives the host
// filesystem's size beside it.
func (r *Root) TotalCaps() (caps, host int64, err error) {
	_, host, _, _, err = r.hostStat()
	if err != nil {
		return 0, 0, err
	}
	keys, err := r.recordKeys()
	if err != nil {
		return 0, 0, err
	}
	for _, key := range keys {
		if rec, err := r.readRecord(key); err == nil && rec.Kind == volumes.Loop {
			caps += rec.CapBytes
		}
	}
	return caps, host, nil
}

// exclusiveBytes is what the image at path holds on the host alone: its
// allocated bytes minus those it shares with other files (FIEMAP's shared
// flag). Where extents cannot be read, every allocated byte counts as its
// own, as on a host without reflinks.
func exclusiveBytes(path string) (int64, error) {
	_, allocated, _, err := fileSizes(path)
	if err != nil || allocated == 0 {
		return allocated, err
	}
	if _, shared, err := volumes.FileExtents(path); err == nil {
		allocated -= int64(volumes.UnionBytes(shared))
	}
	return max(allocated, 0), nil
}
