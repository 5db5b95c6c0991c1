package transfer

import (
	"context"
	"errors"
	"github.com/opencontainers/go-digest"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content/memory"
)

// cutting is a store that fails every chunk fetch after the first n.
type cutting struct {
	*memory.Store
	n atomic.Int32
}

var errCut = errors.New("connection cut")

func (c *cutting) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	if desc.MediaType == ChunkMediaType && c.n.Add(-1) < 0 {
		return nil, errCut
	}
	return c.Store.Fetch(ctx, desc)
}

// TestPullResumes: a pull cut after some chunks leaves only checked
// chunks in its file; pulled again into the same file, it downloads only
// the chunks it lacks. A file that holds stray data (a chunk damaged, data
// where the image has a hole) is mended: the result is the image, byte for
// byte, with its holes.
func TestPullResumes(t *testing.T) {
	ctx := context.Background()
	img := sparseImage(t)
	store := memory.New()
	if _, err := Push(ctx, store, img, Config{FS: "ext4"}, "g1", 1); err != nil {
		t.Fatal(err)
	}
	dst, err := os.Create(filepath.Join(t.TempDir(), "part"))
	must(t, err)
	defer dst.Close()
	cut := &cutting{Store: store}
	cut.n.Store(2)
	if _, err := Pull(ctx, cut, "g1", dst, PullOptions{Parallel: 1}); !errors.Is(err, errCut) {
		t.Fatalf("a cut pull: %v", err)
	}
	res, err := Pull(ctx, store, "g1", dst, PullOptions{})
	if err != nil || res.Resumed != 2 || res.Fetched != 2 {
		t.Fatalf("the resumed pull: %+v %v, want 2 resumed, 2 fetched", res, err)
	}
	if !sameBytes(t, img, dst) {
		t.Fatal("the resumed pull made another image")
	}
	// Stray data: a chunk overwritten, bytes where the image has a hole.
	_, err = dst.WriteAt([]byte("damage"), 100)
	must(t, err)
	_, err = dst.WriteAt([]byte("stray"), 20<<20)
	must(t, err)
	res, err = Pull(ctx, store, "g1", dst, PullOptions{})
	if err != nil || res.Resumed != 3 || res.Fetched != 1 {
		t.Fatalf("the pull over stray data: %+v %v, want 3 resumed, 1 fetched", res, err)
	}
	if !sameBytes(t, img, dst) {
		t.Fatal("stray data stayed in the pulled image")
	}
	if allocated(t, dst) > 20<<20 {
		t.Errorf("the mended image allocates %d bytes: a hole was not punched", allocated(t, dst))
	}
}

// TestPullDelta: with Delta, dst receives only the chunks that differ
// from Local, and Ranges say what the whole image holds; with LocalChunks
// (the table of the artifact Local is), Local is not read at all.
func TestPullDelta(t *testing.T) {
	ctx := context.Background()
	img := sparseImage(t)
	store := memory.New()
	g1, err := Push(ctx, store, img, Config{FS: "ext4"}, "g1", Parallel)
	must(t, err)
	local, _, err := pullTo(t, store, "g1", nil)
	must(t, err)
	_, err = img.WriteAt([]byte("changed"), 29<<20)
	must(t, err)
	_, err = Push(ctx, store, img, Config{FS: "ext4"}, "g2", Parallel)
	must(t, err)
	old := pushedChunks(t, store, g1)
	known := map[int64]digest.Digest{}
	for _, c := range old {
		known[c.Offset] = c.RawDigest
	}
	for name, opts := range map[string]PullOptions{
		"read":  {Local: local, Delta: true},
		"known": {Local: nil, Delta: true, LocalChunks: known}, // nil: never read
	} {
		dst, err := os.Create(filepath.Join(t.TempDir(), "part"))
		must(t, err)
		res, err := Pull(ctx, store, "g2", dst, opts)
		if err != nil || res.Fetched != 1 || res.Local != 3 || len(res.Ranges) != 3 {
			t.Fatalf("%s: %+v %v, want 1 fetched, 3 local, 3 ranges", name, res, err)
		}
		if allocated(t, dst) > 5<<20 {
			t.Errorf("%s: the delta holds %d bytes, want one chunk", name, allocated(t, dst))
		}
		dst.Close()
	}
}

// pushedChunks reads back the chunk table of a push's manifest.
func pushedChunks(t *testing.T, store *memory.Store, res PushResult) []ChunkBlob {
	t.Helper()
	var m ocispec.Manifest
	rc, err := store.Fetch(context.Background(), res.Manifest)
	must(t, err)
	defer rc.Close()
	must(t, jsonDecode(rc, &m))
	chunks, err := ParseChunks(m, res.Config)
	must(t, err)
	return chunks
}
