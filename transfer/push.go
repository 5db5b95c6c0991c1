package transfer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/errdef"
)

// AnnotationRawDigest names a chunk's uncompressed content: a puller that
// holds the same bytes at the same offset (a previous generation) takes
// them from disk instead of the network.
const AnnotationRawDigest = "io.dindstore.chunk.raw-digest"

// Parallel is how many chunks move at once by default.
const Parallel = 4

// PushResult says what a push did.
type PushResult struct {
	// Manifest is the pushed manifest's descriptor; Config the config.
	Manifest ocispec.Descriptor
	Config   Config
	// Sent and Skipped count the chunks uploaded and those the registry
	// had already (an earlier generation's, at the same offset).
	Sent, Skipped int
	// SentBytes is what was uploaded (compressed chunks).
	SentBytes int64
}

// Push pushes the image open at image, which nothing may write meanwhile,
// as an artifact to target, tagged tag. cfg describes the image but for
// ImageSize, ChunkSize (default DefaultChunkSize) and ImageDigest, which
// Push sets. Chunks the target has already are not sent again.
func Push(ctx context.Context, target oras.Target, image *os.File, cfg Config, tag string, parallel int) (PushResult, error) {
	fi, err := image.Stat()
	if err != nil {
		return PushResult{}, err
	}
	cfg.ImageSize = fi.Size()
	if cfg.ChunkSize == 0 {
		cfg.ChunkSize = DefaultChunkSize
	}
	plan, err := PlanChunks(image, cfg.ImageSize, cfg.ChunkSize)
	if err != nil {
		return PushResult{}, err
	}
	res := PushResult{}
	blobs, err := pushChunks(ctx, target, image, plan, parallel, &res)
	if err != nil {
		return res, classify(err)
	}
	cfg.ImageDigest = imageDigest(cfg.ImageSize, blobs)
	res.Config = cfg
	res.Manifest, err = pushManifest(ctx, target, cfg, blobs, tag)
	return res, classify(err)
}

// pushChunks encodes and uploads the planned chunks, parallel at a time,
// skipping those the target has.
func pushChunks(ctx context.Context, target oras.Target, image *os.File, plan []Chunk, parallel int, res *PushResult) ([]ChunkBlob, error) {
	blobs := make([]ChunkBlob, len(plan))
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(parallel, 1))
	for i, c := range plan {
		g.Go(func() error {
			b, sent, err := pushChunk(gctx, target, image, c)
			if err != nil {
				return fmt.Errorf("chunk at %d: %w", c.Offset, err)
			}
			mu.Lock()
			defer mu.Unlock()
			blobs[i] = b
			if sent {
				res.Sent, res.SentBytes = res.Sent+1, res.SentBytes+b.Size
			} else {
				res.Skipped++
			}
			return nil
		})
	}
	return blobs, g.Wait()
}

// pushChunk encodes one chunk and uploads it unless the target has it.
func pushChunk(ctx context.Context, target oras.Target, image *os.File, c Chunk) (ChunkBlob, bool, error) {
	blob, d, raw, err := encodeChunk(image, c)
	if err != nil {
		return ChunkBlob{}, false, err
	}
	b := ChunkBlob{Chunk: c, Digest: d, Size: int64(len(blob)), RawDigest: raw}
	desc := b.descriptor()
	if ok, err := target.Exists(ctx, desc); err != nil {
		return b, false, err
	} else if ok {
		return b, false, nil
	}
	err = target.Push(ctx, desc, bytes.NewReader(blob))
	if errors.Is(err, errdef.ErrAlreadyExists) {
		return b, false, nil
	}
	return b, err == nil, err
}

// pushManifest pushes the config blob and the manifest, tagged.
func pushManifest(ctx context.Context, target oras.Target, cfg Config, blobs []ChunkBlob, tag string) (ocispec.Descriptor, error) {
	cb, cdesc, err := ConfigBlob(cfg)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if err := target.Push(ctx, cdesc, bytes.NewReader(cb)); err != nil && !errors.Is(err, errdef.ErrAlreadyExists) {
		return ocispec.Descriptor{}, fmt.Errorf("push the config: %w", err)
	}
	mb, err := json.Marshal(NewManifest(cdesc, blobs))
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc, err := oras.TagBytes(ctx, target, ocispec.MediaTypeImageManifest, mb, tag)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("push the manifest as %s: %w", tag, err)
	}
	return desc, nil
}

// imageDigest is the digest of the whole image: of its size and of each
// chunk that holds data, by offset, length and the digest of its
// uncompressed bytes (a hole reads as zeros; a chunk left out is a hole).
// Every chunk's bytes being checked, it names the image as a digest of
// all its bytes would, without reading its holes.
func imageDigest(size int64, blobs []ChunkBlob) digest.Digest {
	var b strings.Builder
	fmt.Fprintf(&b, "dindstore-image %d\n", size)
	for _, c := range blobs {
		fmt.Fprintf(&b, "%d %d %s\n", c.Offset, c.Length, c.RawDigest)
	}
	return digest.FromString(b.String())
}

// rawDigest names uncompressed chunk bytes.
func rawDigest(raw []byte) digest.Digest { return digest.FromBytes(raw) }
