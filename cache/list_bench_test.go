package cache

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/dindstore/dindstore/volumes"
)

// BenchmarkList500 lists 500 loop caches (sparse 20 GiB images, records
// with the figures of a last release): the default view only stats and
// reads records, so one call should take well under a second.
func BenchmarkList500(b *testing.B) {
	r, err := OpenRoot(b.TempDir()+"/root", true)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC()
	for i := 0; i < 500; i++ {
		key := fmt.Sprintf("bench-%03d", i)
		f, err := os.Create(r.imagePath(key))
		if err != nil {
			b.Fatal(err)
		}
		if err := f.Truncate(20 << 30); err != nil {
			b.Fatal(err)
		}
		f.Close()
		rec := &Record{Key: key, Kind: volumes.Loop, FS: volumes.Ext4, CapBytes: 20 << 30, StorageDriver: "overlay2",
			Created: now, LastUsed: now, Usage: &Usage{FSBytes: 20 << 30, UsedBytes: 1 << 30, Inodes: 1 << 20, InodesUsed: 1000, At: now}}
		if err := r.writeRecord(rec); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		entries, err := r.List(ctx, ListOptions{})
		if err != nil || len(entries) != 500 {
			b.Fatalf("List = %d entries, %v", len(entries), err)
		}
	}
}
