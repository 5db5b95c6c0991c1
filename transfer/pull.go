package transfer

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"oras.land/oras-go/v2/content"
)

// PullResult says what a pull did.
type PullResult struct {
	// Manifest is the pulled manifest's descriptor; Config its config.
	Manifest ocispec.Descriptor
	Config   Config
	// Fetched counts the chunks downloaded, Local those taken from the
	// local image (the same bytes at the same offset).
	Fetched, Local int
	// FetchedBytes is what was downloaded (compressed chunks).
	FetchedBytes int64
}

// Source is what Pull reads from: a registry repository, or any store.
type Source interface {
	content.Fetcher
	content.Resolver
}

// Pull writes the artifact ref of src into dst, a new empty file the
// caller made (in the directory of the image it will become): sized as
// the image, its chunks written at their offsets (holes stay holes), each
// checked against its digest, then the whole image against the config's
// digest, and synced. local, when not nil, is an image that may hold some
// chunks already (the key's previous generation): those with the same
// bytes at the same offset are copied from it instead of downloaded. On
// error dst holds part of the image; the caller removes it.
func Pull(ctx context.Context, src Source, ref string, dst, local *os.File, parallel int) (PullResult, error) {
	res := PullResult{}
	m, cfg, err := fetchManifest(ctx, src, ref, &res)
	if err != nil {
		return res, classify(err)
	}
	chunks, err := ParseChunks(m, cfg)
	if err != nil {
		return res, err
	}
	if err := dst.Truncate(cfg.ImageSize); err != nil {
		return res, fmt.Errorf("size %s: %w", dst.Name(), err)
	}
	if err := pullChunks(ctx, src, chunks, dst, local, parallel, &res); err != nil {
		return res, classify(err)
	}
	if got := imageDigest(cfg.ImageSize, chunks); got != cfg.ImageDigest {
		return res, fmt.Errorf("%w: the chunks make an image of digest %s, the artifact says %s", ErrCorrupt, got,
			cfg.ImageDigest)
	}
	return res, dst.Sync()
}

// fetchManifest resolves ref and reads its manifest and config.
func fetchManifest(ctx context.Context, src Source, ref string, res *PullResult) (ocispec.Manifest, Config, error) {
	var m ocispec.Manifest
	var cfg Config
	desc, err := src.Resolve(ctx, ref)
	if err != nil {
		return m, cfg, fmt.Errorf("resolve %s: %w", ref, err)
	}
	res.Manifest = desc
	if desc.Size > 16<<20 {
		return m, cfg, fmt.Errorf("%w: a manifest of %d bytes", ErrInvalid, desc.Size)
	}
	mb, err := content.FetchAll(ctx, src, desc)
	if err != nil {
		return m, cfg, fmt.Errorf("fetch the manifest of %s: %w", ref, err)
	}
	if err := json.Unmarshal(mb, &m); err != nil {
		return m, cfg, fmt.Errorf("%w: the manifest of %s: %w", ErrInvalid, ref, err)
	}
	if m.Config.MediaType != ConfigMediaType || m.Config.Size > 1<<20 {
		return m, cfg, fmt.Errorf("%w: %s is not a dindstore cache (config %q)", ErrInvalid, ref, m.Config.MediaType)
	}
	cb, err := content.FetchAll(ctx, src, m.Config)
	if err != nil {
		return m, cfg, fmt.Errorf("fetch the config of %s: %w", ref, err)
	}
	if err := json.Unmarshal(cb, &cfg); err != nil {
		return m, cfg, fmt.Errorf("%w: the config of %s: %w", ErrInvalid, ref, err)
	}
	res.Config = cfg
	return m, cfg, nil
}

// pullChunks writes every chunk into dst, parallel at a time.
func pullChunks(ctx context.Context, src Source, chunks []ChunkBlob, dst, local *os.File, parallel int, res *PullResult) error {
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(parallel, 1))
	for _, c := range chunks {
		g.Go(func() error {
			fetched, err := pullChunk(gctx, src, c, dst, local)
			if err != nil {
				return fmt.Errorf("chunk at %d (%s): %w", c.Offset, c.Digest, err)
			}
			mu.Lock()
			defer mu.Unlock()
			if fetched {
				res.Fetched, res.FetchedBytes = res.Fetched+1, res.FetchedBytes+c.Size
			} else {
				res.Local++
			}
			return nil
		})
	}
	return g.Wait()
}

// pullChunk writes one chunk into dst: from local when it holds the same
// bytes there, else downloaded and checked.
func pullChunk(ctx context.Context, src Source, c ChunkBlob, dst, local *os.File) (fetched bool, err error) {
	if raw := localChunk(local, c); raw != nil {
		_, err := dst.WriteAt(raw, c.Offset)
		return false, err
	}
	rc, err := src.Fetch(ctx, c.descriptor())
	if err != nil {
		return true, err
	}
	defer rc.Close()
	blob, err := io.ReadAll(io.LimitReader(rc, c.Size+1))
	if err != nil {
		return true, err
	}
	raw, err := DecodeChunk(blob, c.Digest, c.Length)
	if err == nil && rawDigest(raw) != c.RawDigest {
		err = fmt.Errorf("%w: its bytes have another digest than the manifest's %s", ErrCorrupt, c.RawDigest)
	}
	if err != nil {
		return true, err
	}
	_, err = dst.WriteAt(raw, c.Offset)
	return true, err
}

// localChunk is c's bytes from local when local holds exactly them at
// c's offset; nil otherwise.
func localChunk(local *os.File, c ChunkBlob) []byte {
	if local == nil {
		return nil
	}
	raw := make([]byte, c.Length)
	if n, _ := local.ReadAt(raw, c.Offset); int64(n) != c.Length || rawDigest(raw) != c.RawDigest {
		return nil
	}
	return raw
}
