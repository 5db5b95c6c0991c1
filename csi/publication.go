package csi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/dindstore/dindstore/handoff"

	"github.com/moby/sys/atomicwriter"
)

// publication is a volume published at a target path: what the plugin
// writes under the root before it makes anything, so that a plugin that
// restarts finds it again (adopt or clean up), and removes once the volume
// is unpublished and its cache released.
type publication struct {
	VolumeID string `json:"volume_id"`
	Key      string `json:"key"`
	Target   string `json:"target"`
	Pod      Pod    `json:"pod"`
	// Own says the cache is the volume's own (a fresh cache or a clone),
	// removed at unpublish; a cacheKey's cache is kept.
	Own bool `json:"own"`
	// Commit makes the clone the warm key's next generation at unpublish.
	Commit    bool      `json:"commit,omitempty"`
	Published time.Time `json:"published"`

	until chan struct{} // closed to unpublish
	done  chan error    // the lease's end: the release's error
	lease handoff.Lease // set once bound

	mu     sync.Mutex // a health check against the release
	ending bool       // unpublished: the lease is being released
}

// health checks the published cache's filesystem (see cache.Lease.Health);
// nil once it is being unpublished.
func (p *publication) health() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if h, ok := p.lease.(interface{ Health() error }); ok && !p.ending {
		return h.Health()
	}
	return nil
}

// end asks the lease to end (after any health check in progress) and
// waits for its release.
func (p *publication) end() error {
	p.mu.Lock()
	p.ending = true
	p.mu.Unlock()
	close(p.until)
	return <-p.done
}

// command is what the lease's owner record says of its holder: the pod and
// the volume, so that a refused pod is told which pod holds the key.
func (p *publication) command() []string {
	cmd := []string{"dindstore-csi", "volume=" + p.VolumeID, "target=" + p.Target}
	if p.Pod.Name != "" {
		cmd = append(cmd, "pod="+p.Pod.String(), "uid="+p.Pod.UID)
	}
	return cmd
}

// volumeKey names a volume's own cache: a hash of its id (the kubelet's
// ids are long; any id becomes a valid key).
func volumeKey(volumeID string) string {
	sum := sha256.Sum256([]byte(volumeID))
	return "csi." + hex.EncodeToString(sum[:12])
}

// namespacedKey names a persistent cache of a namespace.
func namespacedKey(namespace, cacheKey string) string {
	return "k8s." + namespace + "." + cacheKey
}

// store keeps the publication records, one file per volume in dir.
type store struct{ dir string }

func (s store) path(volumeID string) string {
	return filepath.Join(s.dir, volumeKey(volumeID)+".json")
}

// save writes p atomically (and durably: it must outlive a crash).
func (s store) save(p *publication) error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("record publication of volume %s: %w", p.VolumeID, err)
	}
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := atomicwriter.WriteFile(s.path(p.VolumeID), b, 0o600); err != nil {
		return fmt.Errorf("record publication of volume %s: %w", p.VolumeID, err)
	}
	return nil
}

// remove forgets a publication.
func (s store) remove(volumeID string) error {
	if err := os.Remove(s.path(volumeID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("forget publication of volume %s: %w", volumeID, err)
	}
	return nil
}

// read reads the publication record at path, which must be the one its
// volume id names.
func (s store) read(path string) (*publication, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var p publication
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("publication record %s: %w", path, err)
	}
	if s.path(p.VolumeID) != path {
		return nil, fmt.Errorf("publication record %s: its volume id does not match its name", path)
	}
	return &p, nil
}

// get reads the publication record of a volume (nil when it has none).
func (s store) get(volumeID string) (*publication, error) {
	p, err := s.read(s.path(volumeID))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, err
	case p.VolumeID != volumeID:
		return nil, fmt.Errorf("publication record %s: not volume %s's", s.path(volumeID), volumeID)
	}
	return p, nil
}

// load reads every publication record; unreadable ones are reported and
// skipped.
func (s store) load(ctx context.Context) ([]*publication, []error) {
	entries, err := os.ReadDir(s.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, []error{err}
	}
	var pubs []*publication
	var errs []error
	for _, e := range entries {
		if ctx.Err() != nil || filepath.Ext(e.Name()) != ".json" || !e.Type().IsRegular() {
			continue
		}
		if p, err := s.read(filepath.Join(s.dir, e.Name())); err != nil {
			errs = append(errs, err)
		} else {
			pubs = append(pubs, p)
		}
	}
	return pubs, errs
}
