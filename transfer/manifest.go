package transfer

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types and annotations of a cache artifact.
const (
	// ArtifactType is the manifest's artifactType: a dindstore cache image.
	ArtifactType = "application/vnd.dindstore.cache.v1"
	// ConfigMediaType is the config blob's: Config as JSON.
	ConfigMediaType = "application/vnd.dindstore.cache.config.v1+json"
	// ChunkMediaType is each chunk's: a range of the image, zstd.
	ChunkMediaType = "application/vnd.dindstore.cache.chunk.v1+zstd"
	// AnnotationOffset and AnnotationLength place a chunk in the image.
	AnnotationOffset = "io.dindstore.chunk.offset"
	AnnotationLength = "io.dindstore.chunk.length"
)

// maxImageSize bounds the image a manifest may describe (as cache.ParseSize).
const maxImageSize = int64(1) << 60

// Config is what a puller must know to rebuild the image, beside the
// chunks: the config blob of the artifact.
type Config struct {
	// ImageSize is the image file's size; ChunkSize the grid of the chunks.
	ImageSize int64 `json:"image_size"`
	ChunkSize int64 `json:"chunk_size"`
	// FS, BlockSize and FSUUID describe the filesystem in the image (as
	// the cache's record does).
	FS        string `json:"fs"`
	BlockSize uint32 `json:"block_size,omitempty"`
	FSUUID    string `json:"fs_uuid,omitempty"`
	// ImageStore is the inner daemon's store in it (graphdriver or
	// snapshotter), Engine the engine that filled it, when known.
	ImageStore string `json:"image_store,omitempty"`
	Engine     string `json:"engine,omitempty"`
	// Generation is the warm cache's generation pushed.
	Generation int `json:"generation"`
	// ImageDigest is the digest of the whole image, holes read as zeros.
	ImageDigest digest.Digest `json:"image_digest"`
}

// Validate refuses a config no push could have written.
func (c Config) Validate() error {
	switch {
	case c.ImageSize <= 0 || c.ImageSize > maxImageSize:
		return fmt.Errorf("%w: image size %d", ErrInvalid, c.ImageSize)
	case c.FS != "ext4" && c.FS != "xfs":
		return fmt.Errorf("%w: filesystem %q: want ext4 or xfs", ErrInvalid, c.FS)
	case c.Generation < 0:
		return fmt.Errorf("%w: generation %d", ErrInvalid, c.Generation)
	}
	if err := c.ImageDigest.Validate(); err != nil {
		return fmt.Errorf("%w: image digest %q: %w", ErrInvalid, c.ImageDigest, err)
	}
	return checkChunkSize(c.ChunkSize)
}

// ChunkBlob is a chunk and the blob that holds it.
type ChunkBlob struct {
	Chunk
	Digest digest.Digest
	// Size is the compressed blob's size.
	Size int64
	// RawDigest names the chunk's uncompressed bytes.
	RawDigest digest.Digest
}

// descriptor is the chunk's layer in the manifest.
func (c ChunkBlob) descriptor() ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: ChunkMediaType, Digest: c.Digest, Size: c.Size,
		Annotations: map[string]string{AnnotationOffset: strconv.FormatInt(c.Offset, 10),
			AnnotationLength: strconv.FormatInt(c.Length, 10), AnnotationRawDigest: c.RawDigest.String()}}
}

// NewManifest is the artifact's manifest: the config blob's descriptor,
// and one layer per chunk, in offset order, placed by its annotations.
func NewManifest(config ocispec.Descriptor, chunks []ChunkBlob) ocispec.Manifest {
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: ArtifactType, Config: config}
	m.SchemaVersion = 2
	for _, c := range chunks {
		m.Layers = append(m.Layers, c.descriptor())
	}
	return m
}

// ConfigBlob is cfg as the config blob, and its descriptor.
func ConfigBlob(cfg Config) ([]byte, ocispec.Descriptor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, ocispec.Descriptor{}, err
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, ocispec.Descriptor{}, err
	}
	return b, ocispec.Descriptor{MediaType: ConfigMediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}, nil
}

// ParseChunks reads the chunks of a manifest for an image as cfg
// describes it, refusing what no push writes: another artifact type or
// media type, a chunk off the grid, past the image's end, of the wrong
// length, or out of order.
func ParseChunks(m ocispec.Manifest, cfg Config) ([]ChunkBlob, error) {
	if m.ArtifactType != ArtifactType || m.Config.MediaType != ConfigMediaType {
		return nil, fmt.Errorf("%w: not a dindstore cache (artifact type %q, config %q)", ErrInvalid, m.ArtifactType,
			m.Config.MediaType)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	out := make([]ChunkBlob, 0, len(m.Layers))
	next := int64(0)
	for i, l := range m.Layers {
		c, err := parseChunk(l)
		if err != nil {
			return nil, fmt.Errorf("chunk %d: %w", i, err)
		}
		want := min(cfg.ChunkSize, cfg.ImageSize-c.Offset)
		if c.Offset < next || c.Offset%cfg.ChunkSize != 0 || c.Offset >= cfg.ImageSize || c.Length != want {
			return nil, fmt.Errorf("%w: chunk %d at %d of %d bytes does not fit a %d-byte image in %d-byte chunks",
				ErrInvalid, i, c.Offset, c.Length, cfg.ImageSize, cfg.ChunkSize)
		}
		next = c.Offset + c.Length
		out = append(out, c)
	}
	return out, nil
}

// parseChunk reads one layer of the manifest as a chunk.
func parseChunk(l ocispec.Descriptor) (ChunkBlob, error) {
	if l.MediaType != ChunkMediaType {
		return ChunkBlob{}, fmt.Errorf("%w: media type %q", ErrInvalid, l.MediaType)
	}
	if err := l.Digest.Validate(); err != nil {
		return ChunkBlob{}, fmt.Errorf("%w: digest %q: %w", ErrInvalid, l.Digest, err)
	}
	raw := digest.Digest(l.Annotations[AnnotationRawDigest])
	if err := raw.Validate(); err != nil {
		return ChunkBlob{}, fmt.Errorf("%w: raw digest %q: %w", ErrInvalid, raw, err)
	}
	off, err1 := strconv.ParseInt(l.Annotations[AnnotationOffset], 10, 64)
	length, err2 := strconv.ParseInt(l.Annotations[AnnotationLength], 10, 64)
	if err1 != nil || err2 != nil || off < 0 || length <= 0 || l.Size <= 0 || l.Size > 2*MaxChunkSize {
		return ChunkBlob{}, fmt.Errorf("%w: offset %q, length %q, size %d", ErrInvalid, l.Annotations[AnnotationOffset],
			l.Annotations[AnnotationLength], l.Size)
	}
	return ChunkBlob{Chunk: Chunk{Offset: off, Length: length}, Digest: l.Digest, Size: l.Size, RawDigest: raw}, nil
}
