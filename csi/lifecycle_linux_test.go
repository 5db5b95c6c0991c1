package csi

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/dindstore/dindstore/cache"
	"github.com/dindstore/dindstore/internal/testutil"
	"github.com/dindstore/dindstore/volumes"
)

// TestPinAll: at start, the plugin pins the provisioned volumes and
// snapshots an earlier version left unpinned, and nothing else.
func TestPinAll(t *testing.T) {
	testutil.RequiresRoot(t)
	root, err := cache.OpenRoot(filepath.Join(t.TempDir(), "root"), true)
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{provisionedKey("pvc-1"), snapshotKey("snapshot-1"), "warm"}
	for _, k := range keys {
		if _, _, err := root.Create(context.Background(), k, cache.Spec{Kind: volumes.Dir}); err != nil {
			t.Fatal(err)
		}
	}
	if err := New(root, Config{NodeID: "n1"}).pinAll(); err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		rec, err := root.Record(k)
		if err != nil || (rec.Pinned != "") != (i < 2) {
			t.Errorf("%s: pinned %q, %v", k, rec.Pinned, err)
		}
	}
}
