package transfer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content/memory"
)

// pullTo pulls ref from src into a new file and returns it.
func pullTo(t *testing.T, src Source, ref string, local *os.File) (*os.File, PullResult, error) {
	t.Helper()
	dst, err := os.Create(filepath.Join(t.TempDir(), "pulled"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dst.Close() })
	res, err := Pull(context.Background(), src, ref, dst, PullOptions{Local: local, Parallel: Parallel})
	return dst, res, err
}

func sameBytes(t *testing.T, a, b *os.File) bool {
	t.Helper()
	ab, err1 := io.ReadAll(io.NewSectionReader(a, 0, 1<<40))
	bb, err2 := io.ReadAll(io.NewSectionReader(b, 0, 1<<40))
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	return bytes.Equal(ab, bb)
}

// TestPushPull: an image pushed and pulled back is the same bytes, its
// holes still holes; pushed again unchanged, nothing is sent; with one
// chunk changed, one chunk is sent, and a pull that has the old image
// beside it downloads only that one.
func TestPushPull(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	img := sparseImage(t)
	cfg := Config{FS: "ext4", BlockSize: 4096, Generation: 1}
	res, err := Push(ctx, store, img, cfg, "g1", Parallel)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 4 || res.Skipped != 0 {
		t.Fatalf("first push: %+v", res)
	}
	pulled, pres, err := pullTo(t, store, "g1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !sameBytes(t, img, pulled) || pres.Fetched != 4 || pres.Config.ImageDigest != res.Config.ImageDigest {
		t.Fatalf("the pulled image differs (%+v)", pres)
	}
	if allocated(t, pulled) > 20<<20 {
		t.Errorf("the pulled 32 MiB image allocates %d bytes: its holes were written", allocated(t, pulled))
	}
	if again, err := Push(ctx, store, img, cfg, "g1", Parallel); err != nil || again.Sent != 0 || again.Skipped != 4 {
		t.Fatalf("pushing the same image again: %+v %v", again, err)
	}
	if _, err := img.WriteAt([]byte("changed"), 29<<20); err != nil {
		t.Fatal(err)
	}
	cfg.Generation = 2
	if res2, err := Push(ctx, store, img, cfg, "g2", Parallel); err != nil || res2.Sent != 1 || res2.Skipped != 3 {
		t.Fatalf("one chunk changed: %+v %v", res2, err)
	}
	pulled2, pres2, err := pullTo(t, store, "g2", pulled) // the previous generation beside it
	if err != nil || !sameBytes(t, img, pulled2) || pres2.Fetched != 1 || pres2.Local != 3 {
		t.Fatalf("the next generation, with the previous one local: %+v %v", pres2, err)
	}
}

// TestPullRefusesCorruption: a chunk blob damaged in the store, or a
// manifest that names a different image digest, fails the pull with
// ErrCorrupt.
func TestPullRefusesCorruption(t *testing.T) {
	ctx := context.Background()
	img := sparseImage(t)
	good := memory.New()
	res, err := Push(ctx, good, img, Config{FS: "ext4"}, "g1", Parallel)
	if err != nil {
		t.Fatal(err)
	}
	// A store that hands out a damaged copy of one chunk.
	bad := &damaging{Store: good, victim: firstChunk(t, good, res.Manifest)}
	if _, _, err := pullTo(t, bad, "g1", nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a damaged chunk: %v, want ErrCorrupt", err)
	}
	if _, _, err := pullTo(t, good, "g1", nil); err != nil {
		t.Fatalf("the same pull from the undamaged store: %v", err)
	}
	// The same chunks under a config that names another image.
	blobs := pushedChunks(t, good, res)
	cfg := res.Config
	cfg.ImageDigest = digest.FromString("another image")
	_, err = pushManifest(ctx, good, cfg, blobs, "lying")
	must(t, err)
	if _, _, err := pullTo(t, good, "lying", nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("chunks that do not make the image the config names: %v, want ErrCorrupt", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// damaging is a store whose blob victim comes back with a bit flipped.
type damaging struct {
	*memory.Store
	victim digest.Digest
}

func (d *damaging) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	rc, err := d.Store.Fetch(ctx, desc)
	if err != nil || desc.Digest != d.victim {
		return rc, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, err
	}
	b[len(b)/2] ^= 1
	return io.NopCloser(bytes.NewReader(b)), nil
}

func firstChunk(t *testing.T, s *memory.Store, manifest ocispec.Descriptor) digest.Digest {
	t.Helper()
	var m ocispec.Manifest
	rc, err := s.Fetch(context.Background(), manifest)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := jsonDecode(rc, &m); err != nil || len(m.Layers) == 0 {
		t.Fatalf("manifest: %v", err)
	}
	return m.Layers[0].Digest
}
