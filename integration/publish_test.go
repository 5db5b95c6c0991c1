//go:build linux

package integration

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dindstore/dindstore/cache"
	"github.com/dindstore/dindstore/handoff"
	"github.com/dindstore/dindstore/volumes"
)

// TestHandoffPublish: the payload a CSI NodePublishVolume hands a lease to,
// through the library in one process: the cache is bound at a target path
// for as long as the publication lasts; a second publication of the key is
// refused (ErrLocked) while the first holds it; unpublishing unmounts the
// target before the lease is released, and leaves nothing.
func TestHandoffPublish(t *testing.T) {
	requireSuite(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	t.Cleanup(func() { cleanupMountsBelow(t, dir); cleanupRoot(t, root) })
	r, err := cache.OpenRoot(root, true)
	must(t, err)
	ctx := context.Background()
	if _, _, err := r.Create(ctx, "pub", cache.Spec{Kind: volumes.Loop, Size: 256 << 20}); err != nil {
		t.Fatal(err)
	}
	target, unpublish := filepath.Join(dir, "target"), make(chan struct{})
	published, done := make(chan struct{}), make(chan error, 1)
	var stop sync.Once
	unpublishNow := func() { stop.Do(func() { close(unpublish) }) }
	t.Cleanup(unpublishNow) // a failed test still ends the publication (and its lease) before the root's cleanup
	acquire := handoff.From(r, "pub", cache.ModePublish, []string{"csi-test"}, cache.AcquireOptions{}, nil)
	go func() {
		_, err := handoff.Hand(ctx, acquire, &handoff.Publish{Target: target, Until: unpublish},
			handoff.Options{Started: func(handoff.Lease) { close(published) }})
		done <- err
	}()
	select {
	case <-published:
	case err := <-done:
		t.Fatalf("publish: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("publish did not happen within 30 s")
	}
	must(t, os.WriteFile(filepath.Join(target, "written-through-the-target"), []byte("x"), 0o644))
	if _, err := os.Stat(filepath.Join(r.MountPath("pub"), "written-through-the-target")); err != nil {
		t.Fatalf("the target is not the cache: %v", err)
	}
	second := handoff.From(r, "pub", cache.ModePublish, nil, cache.AcquireOptions{}, nil)
	if _, err := handoff.Hand(ctx, second, &handoff.Publish{Target: target + "2"}, handoff.Options{}); !errors.Is(err, cache.ErrLocked) {
		t.Fatalf("a second publication of a held key: %v, want ErrLocked", err)
	}
	unpublishNow()
	if err := <-done; err != nil {
		t.Fatalf("unpublish: %v", err)
	}
	if mounted, _ := volumes.IsMounted(target); mounted {
		t.Fatal("the target is still mounted after unpublish")
	}
	if st := listJSON(t, root)["pub"].State; st != "idle" {
		t.Fatalf("after unpublish the cache is %q", st)
	}
	assertNothingLeft(t, root)
}
