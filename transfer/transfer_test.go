package transfer

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
)

// sparseImage writes a 32 MiB sparse file with data at 1 MiB (a few
// bytes), 10 MiB (spanning into the next chunk) and in the last bytes.
func sparseImage(t *testing.T) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "img"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.Truncate(32 << 20); err != nil {
		t.Fatal(err)
	}
	for _, at := range []int64{1 << 20, 10<<20 + 4096, 32<<20 - 100} {
		data := bytes.Repeat([]byte{byte(at >> 20), 0xAB}, 50)
		if at == 10<<20+4096 {
			data = bytes.Repeat([]byte{7}, 3<<20) // into the chunk at 12 MiB
		}
		if _, err := f.WriteAt(data, at); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// TestPlanChunks: only the chunks of the grid that hold data, each once,
// the last cut at the image's end.
func TestPlanChunks(t *testing.T) {
	f := sparseImage(t)
	got, err := PlanChunks(f, 32<<20, DefaultChunkSize)
	if err != nil {
		t.Fatal(err)
	}
	want := []Chunk{{0, 4 << 20}, {8 << 20, 4 << 20}, {12 << 20, 4 << 20}, {28 << 20, 4 << 20}}
	if runtime.GOOS != "linux" {
		t.Skipf("no SEEK_DATA here: %d chunks", len(got))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("chunks %v, want %v", got, want)
	}
	odd, err := PlanChunks(f, 32<<20-50, DefaultChunkSize) // an image size off the grid
	if err != nil || odd[len(odd)-1] != (Chunk{28 << 20, 4<<20 - 50}) {
		t.Fatalf("the last chunk of a 32 MiB-50 image: %v %v", odd, err)
	}
	short, err := PlanChunks(f, 30<<20, DefaultChunkSize) // the data at 32 MiB-100 lies past it
	if err != nil || len(short) != 3 {
		t.Fatalf("the chunks of the first 30 MiB: %v %v", short, err)
	}
	for _, bad := range []int64{0, 1000, 3 << 20, 128 << 20} {
		if _, err := PlanChunks(f, 32<<20, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("chunk size %d: %v, want ErrInvalid", bad, err)
		}
	}
}

// TestChunkRoundTrip: a chunk decodes to what was read, and a blob that
// differs from its digest, or decodes to another length, is ErrCorrupt.
func TestChunkRoundTrip(t *testing.T) {
	f := sparseImage(t)
	c := Chunk{Offset: 8 << 20, Length: 4 << 20}
	blob, d, err := EncodeChunk(f, c)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(blob)) >= c.Length {
		t.Errorf("a chunk of mostly zeros and repeats did not compress: %d bytes", len(blob))
	}
	raw, err := DecodeChunk(blob, d, c.Length)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, c.Length)
	if _, err := f.ReadAt(want, c.Offset); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, want) {
		t.Fatal("the decoded chunk differs from the image")
	}
	bad := slices.Clone(blob)
	bad[len(bad)/2] ^= 1
	if _, err := DecodeChunk(bad, d, c.Length); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a changed blob: %v, want ErrCorrupt", err)
	}
	if _, err := DecodeChunk(blob, d, c.Length-1); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a blob of another length: %v, want ErrCorrupt", err)
	}
	if _, _, err := EncodeChunk(f, Chunk{Offset: 30 << 20, Length: 4 << 20}); err == nil {
		t.Error("a chunk past the image's end was read")
	}
}

// TestManifestRoundTrip: what NewManifest writes, ParseChunks reads back;
// a manifest no push writes is refused.
func TestManifestRoundTrip(t *testing.T) {
	cfg := Config{ImageSize: 30<<20 + 5, ChunkSize: DefaultChunkSize, FS: "ext4", BlockSize: 4096,
		Generation: 3, ImageDigest: digest.FromString("image")}
	_, desc, err := ConfigBlob(cfg)
	if err != nil {
		t.Fatal(err)
	}
	chunks := []ChunkBlob{
		{Chunk{0, 4 << 20}, digest.FromString("a"), 100, digest.FromString("raw a")},
		{Chunk{28 << 20, 2<<20 + 5}, digest.FromString("b"), 200, digest.FromString("raw b")},
	}
	m := NewManifest(desc, chunks)
	got, err := ParseChunks(m, cfg)
	if err != nil || !slices.Equal(got, chunks) {
		t.Fatalf("ParseChunks = %v, %v; want %v", got, err, chunks)
	}
	mutations := map[string]func(){
		"off the grid":       func() { m.Layers[1].Annotations[AnnotationOffset] = "100" },
		"past the end":       func() { m.Layers[1].Annotations[AnnotationOffset] = "33554432" },
		"wrong length":       func() { m.Layers[0].Annotations[AnnotationLength] = "5" },
		"out of order":       func() { m.Layers[0], m.Layers[1] = m.Layers[1], m.Layers[0] },
		"another media type": func() { m.Layers[0].MediaType = "application/octet-stream" },
		"bad digest":         func() { m.Layers[0].Digest = "sha256:nope" },
		"no raw digest":      func() { delete(m.Layers[0].Annotations, AnnotationRawDigest) },
		"another artifact":   func() { m.ArtifactType = "application/vnd.other" },
	}
	for name, mutate := range mutations {
		m = NewManifest(desc, chunks)
		mutate()
		if _, err := ParseChunks(m, cfg); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	for name, bad := range map[string]Config{
		"no size":     {ChunkSize: DefaultChunkSize, FS: "ext4", ImageDigest: cfg.ImageDigest},
		"btrfs":       {ImageSize: 1 << 30, ChunkSize: DefaultChunkSize, FS: "btrfs", ImageDigest: cfg.ImageDigest},
		"odd chunks":  {ImageSize: 1 << 30, ChunkSize: 3 << 20, FS: "ext4", ImageDigest: cfg.ImageDigest},
		"no digest":   {ImageSize: 1 << 30, ChunkSize: DefaultChunkSize, FS: "ext4"},
		"minus a gen": {ImageSize: 1 << 30, ChunkSize: DefaultChunkSize, FS: "xfs", Generation: -1, ImageDigest: cfg.ImageDigest},
	} {
		if _, _, err := ConfigBlob(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("config %s: %v, want ErrInvalid", name, err)
		}
	}
}
