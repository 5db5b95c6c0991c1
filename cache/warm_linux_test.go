package cache

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/dindstore/dindstore/internal/testutil"
	"github.com/dindstore/dindstore/volumes"
)

// TestPruneKeepsNewestGeneration: prune removes clones and earlier
// generations, never the newest generation of a warm cache unless told.
func TestPruneKeepsNewestGeneration(t *testing.T) {
	testutil.RequiresRoot(t)
	ctx := context.Background()
	r := rootWith(t, "w", Spec{Kind: volumes.Dir})
	for i, job := range []string{"j1", "j2"} {
		if _, hit, err := r.FromWarm(ctx, job, "w", Spec{}); err != nil || !hit {
			t.Fatalf("FromWarm %s: hit %v, %v", job, hit, err)
		}
		if err := os.WriteFile(filepath.Join(r.dataPath(job), "mark"), []byte{byte(i)}, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := r.Promote(ctx, job); err != nil {
			t.Fatal(err)
		}
	}
	if _, hit, err := r.FromWarm(ctx, "j3", "w", Spec{}); err != nil || !hit {
		t.Fatalf("FromWarm j3: %v %v", hit, err)
	}
	if b, _ := os.ReadFile(filepath.Join(r.dataPath("j3"), "mark")); len(b) != 1 || b[0] != 1 {
		t.Fatalf("the newest clone does not see the last commit: %v", b)
	}
	removed, err := r.Prune(ctx, Policy{MaxCount: 0}, false)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, rm := range removed {
		keys = append(keys, rm.Key)
	}
	want := []string{"w (w@g0)", "w (w@g1)", "j3"}
	if !slices.Equal(keys, want) {
		t.Fatalf("prune removed %v, want %v", keys, want)
	}
	entries, _ := r.List(ctx, ListOptions{})
	if len(entries) != 1 || entries[0].Key != "w" || entries[0].Generation != 2 || entries[0].PreviousGenerations != 0 {
		t.Fatalf("left: %+v", entries)
	}
	if _, err := r.Prune(ctx, Policy{MaxCount: 0, IncludeWarm: true}, false); err != nil {
		t.Fatal(err)
	}
	if entries, _ := r.List(ctx, ListOptions{}); len(entries) != 0 {
		t.Fatalf("--include-warm kept %+v", entries)
	}
}

// TestPromoteRefusesDamagedClone: a clone whose release found its
// filesystem damaged never becomes its warm cache's next generation (a CSI
// volume's commit at unpublish, or `dindstore commit`).
func TestPromoteRefusesDamagedClone(t *testing.T) {
	testutil.RequiresRoot(t)
	ctx := context.Background()
	r := rootWith(t, "w", Spec{Kind: volumes.Dir})
	if _, hit, err := r.FromWarm(ctx, "job", "w", Spec{}); err != nil || !hit {
		t.Fatalf("FromWarm: %v %v", hit, err)
	}
	if err := r.updateRecord("job", func(rec *Record) { rec.Damaged = problem(ErrDamaged, nil) }); err != nil {
		t.Fatal(err)
	}
	if err := r.Promote(ctx, "job"); !errors.Is(err, ErrDamaged) {
		t.Fatalf("promoting a damaged clone: %v, want ErrDamaged", err)
	}
	if rec, _ := r.readRecord("w"); rec.Generation != 0 {
		t.Fatalf("the warm cache moved to generation %d", rec.Generation)
	}
}

// TestPrunePassesPinned: a pinned cache (a provisioned volume or snapshot,
// which a Kubernetes object stands for) is never pruned, not even with
// --include-warm; its clones are not pinned; Unpin makes it prunable again.
func TestPrunePassesPinned(t *testing.T) {
	testutil.RequiresRoot(t)
	ctx := context.Background()
	r := rootWith(t, "pv.a", Spec{Kind: volumes.Dir})
	if err := r.Pin("pv.a", "PersistentVolume pvc-1"); err != nil {
		t.Fatal(err)
	}
	if err := r.Pin("nope", "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("pinning a missing key: %v", err)
	}
	if _, err := r.Clone(ctx, "pv.a", "copy"); err != nil {
		t.Fatal(err)
	}
	removed, err := r.Prune(ctx, Policy{MaxCount: 0, IncludeWarm: true}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0].Key != "copy" {
		t.Fatalf("prune removed %+v, want the clone only", removed)
	}
	entries, _ := r.List(ctx, ListOptions{})
	if len(entries) != 1 || entries[0].Pinned != "PersistentVolume pvc-1" {
		t.Fatalf("left: %+v", entries)
	}
	if err := r.Pin("pv.a", ""); err != nil {
		t.Fatal(err)
	}
	if removed, _ := r.Prune(ctx, Policy{MaxCount: 0, IncludeWarm: true}, false); len(removed) != 1 {
		t.Fatalf("unpinned, prune removed %+v", removed)
	}
}
