package transfer

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/dindstore/dindstore/internal/fault"
	"github.com/dindstore/dindstore/volumes"
	"github.com/opencontainers/go-digest"
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
	// local image (the same bytes at the same offset), Resumed those dst
	// held already (a pull cut short before).
	Fetched, Local, Resumed int
	// FetchedBytes is what was downloaded (compressed chunks).
	FetchedBytes int64
	// Ranges are the image's data, [start, end) (what its chunks cover):
	// everything else is a hole.
	Ranges [][2]int64 `json:"-"`
}

// PullOptions tune a pull.
type PullOptions struct {
	// Local, when not nil, is an image that may hold some chunks already
	// (the key's previous generation): those with the same bytes at the
	// same offset are copied from it instead of downloaded.
	Local *os.File
	// Delta leaves the chunks Local holds out of dst (holes there): dst
	// then holds only what differs from Local, to be applied onto it
	// (with the result's Ranges, the image's data).
	Delta bool
	// LocalChunks, with Delta, are the raw digests of Local's chunks by
	// offset, known without reading it (Local is an artifact pulled or
	// pushed before, untouched since): a chunk with the same digest at the
	// same offset is Local's, any other is not, and Local is not read.
	LocalChunks map[int64]digest.Digest
	// Parallel is how many chunks move at once (default Parallel).
	Parallel int
	// Progress, when set, is told the image bytes each finished chunk
	// covers (one call at a time), and first, with n -1, the total: the
	// bytes of all the chunks (the image's holes are not pulled).
	Progress func(n int64, total int64)
	// Admit, when set, is asked before anything is written whether an
	// image of size bytes, of which data bytes are to be written, may be
	// pulled (the host's room).
	Admit func(size, data int64) error
	// Name is the reference as the user gave it (registry/repository:tag),
	// which PullCache records with the digest; default the one resolved.
	Name string
}

// Source is what Pull reads from: a registry repository, or any store.
type Source interface {
	content.Fetcher
	content.Resolver
}

// Pull writes the artifact ref of src into dst, a file the caller made
// (in the directory of the image it will become): empty, or what an
// earlier pull cut short left in it, whose chunks that check are kept
// (the resume). dst is sized as the image, every chunk is written at its
// offset and checked against its digest (ranges no chunk covers are holes),
// then the whole image is checked against the config's digest, and synced.
// On error dst holds only checked chunks; a retry resumes from them.
func Pull(ctx context.Context, src Source, ref string, dst *os.File, opts PullOptions) (PullResult, error) {
	desc, err := src.Resolve(ctx, ref)
	if err != nil {
		return PullResult{}, classify(fmt.Errorf("resolve %s: %w", ref, err))
	}
	return PullManifest(ctx, src, desc, dst, opts)
}

// PullManifest is Pull of the manifest desc (a reference resolved once,
// so that a tag moved meanwhile does not mix two artifacts).
func PullManifest(ctx context.Context, src Source, desc ocispec.Descriptor, dst *os.File, opts PullOptions) (PullResult, error) {
	res := PullResult{Manifest: desc}
	m, cfg, err := fetchManifest(ctx, src, desc)
	if err != nil {
		return res, classify(err)
	}
	res.Config = cfg
	chunks, err := ParseChunks(m, cfg)
	if err != nil {
		return res, err
	}
	if opts.Admit != nil {
		if err := opts.Admit(cfg.ImageSize, opts.toWrite(chunks)); err != nil {
			return res, err
		}
	}
	have, err := prepareDst(dst, cfg, chunks)
	if err != nil {
		return res, err
	}
	res.Ranges = dataRanges(chunks)
	if err := pullChunks(ctx, src, chunks, dst, have, opts, &res); err != nil {
		return res, classify(err)
	}
	if got := imageDigest(cfg.ImageSize, chunks); got != cfg.ImageDigest {
		return res, fmt.Errorf("%w: the chunks make an image of digest %s, the artifact says %s", ErrCorrupt, got,
			cfg.ImageDigest)
	}
	if err := dst.Sync(); err != nil {
		return res, fmt.Errorf("sync %s: %w", dst.Name(), err)
	}
	return res, nil
}

// prepareDst sizes dst as the image and makes every range no chunk covers
// a hole (a resumed file may hold data there), and says which chunk
// offsets hold data already (worth checking for a resume).
func prepareDst(dst *os.File, cfg Config, chunks []ChunkBlob) (map[int64]bool, error) {
	if err := dst.Truncate(cfg.ImageSize); err != nil {
		return nil, fmt.Errorf("size %s: %w", dst.Name(), err)
	}
	held, err := PlanChunks(dst, cfg.ImageSize, cfg.ChunkSize)
	if err != nil || len(held) == 0 {
		return nil, err
	}
	have := make(map[int64]bool, len(held))
	for _, c := range held {
		have[c.Offset] = true
	}
	return have, volumes.PunchOutside(dst, cfg.ImageSize, dataRanges(chunks))
}

// fetchManifest reads the manifest desc and its config.
func fetchManifest(ctx context.Context, src content.Fetcher, desc ocispec.Descriptor) (ocispec.Manifest, Config, error) {
	var m ocispec.Manifest
	var cfg Config
	if desc.Size > 16<<20 {
		return m, cfg, fmt.Errorf("%w: a manifest of %d bytes", ErrInvalid, desc.Size)
	}
	mb, err := content.FetchAll(ctx, src, desc)
	if err != nil {
		return m, cfg, fmt.Errorf("fetch the manifest %s: %w", desc.Digest, err)
	}
	if err := json.Unmarshal(mb, &m); err != nil {
		return m, cfg, fmt.Errorf("%w: the manifest %s: %w", ErrInvalid, desc.Digest, err)
	}
	if m.Config.MediaType != ConfigMediaType || m.Config.Size > 1<<20 {
		return m, cfg, fmt.Errorf("%w: %s is not a dindstore cache (config %q)", ErrInvalid, desc.Digest, m.Config.MediaType)
	}
	cb, err := content.FetchAll(ctx, src, m.Config)
	if err != nil {
		return m, cfg, fmt.Errorf("fetch the config of %s: %w", desc.Digest, err)
	}
	if err := json.Unmarshal(cb, &cfg); err != nil {
		return m, cfg, fmt.Errorf("%w: the config of %s: %w", ErrInvalid, desc.Digest, err)
	}
	return m, cfg, nil
}

// pullChunks writes every chunk into dst, parallel at a time.
func pullChunks(ctx context.Context, src Source, chunks []ChunkBlob, dst *os.File, have map[int64]bool, opts PullOptions, res *PullResult) error {
	var mu sync.Mutex
	var total int64
	for _, c := range chunks {
		total += c.Length
	}
	if opts.Progress != nil {
		opts.Progress(-1, total)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(opts.Parallel, 1))
	for _, c := range chunks {
		g.Go(func() error {
			from, err := pullChunk(gctx, src, c, dst, have[c.Offset], opts)
			if err != nil {
				return fmt.Errorf("chunk at %d (%s): %w", c.Offset, c.Digest, err)
			}
			mu.Lock()
			defer mu.Unlock()
			res.count(from, c)
			if from == fromNetwork && res.Fetched == 2 {
				if err := fault.Point("during-pull"); err != nil {
					return err
				}
			}
			if opts.Progress != nil {
				opts.Progress(c.Length, total)
			}
			return nil
		})
	}
	return g.Wait()
}

// Where a chunk came from.
const (
	fromNetwork = iota
	fromLocal
	fromDst
)

func (res *PullResult) count(from int, c ChunkBlob) {
	switch from {
	case fromNetwork:
		res.Fetched, res.FetchedBytes = res.Fetched+1, res.FetchedBytes+c.Size
	case fromLocal:
		res.Local++
	case fromDst:
		res.Resumed++
	}
}

// pullChunk writes one chunk into dst unless dst holds it already (held:
// it has data there): from opts.Local when it holds the same bytes there
// (with opts.Delta, left out of dst instead), else downloaded and checked.
func pullChunk(ctx context.Context, src Source, c ChunkBlob, dst *os.File, held bool, opts PullOptions) (int, error) {
	if held && localChunk(dst, c) != nil {
		return fromDst, nil
	}
	if opts.Delta && opts.hasLocal(c) {
		if held { // a cut pull's chunk that Local has now: not to be applied
			return fromLocal, volumes.PunchHole(dst, c.Offset, c.Length)
		}
		return fromLocal, nil
	}
	if !opts.Delta {
		if raw := localChunk(opts.Local, c); raw != nil {
			return fromLocal, writeChunk(dst, raw, c)
		}
	}
	bufs := getBuffers()
	defer putBuffers(bufs)
	raw, err := fetchChunk(ctx, src, c, bufs)
	if err != nil {
		return fromNetwork, err
	}
	return fromNetwork, writeChunk(dst, raw, c)
}

// buffers are a chunk's blob and bytes, reused: a pull moves thousands
// of chunks, and fresh memory for each is zeroed and collected again.
type buffers struct{ blob, raw []byte }

var bufferPool = sync.Pool{New: func() any { return &buffers{} }}

func getBuffers() *buffers  { return bufferPool.Get().(*buffers) }
func putBuffers(b *buffers) { bufferPool.Put(b) }

// toWrite is what a pull of chunks writes at most: all their bytes, but
// for those LocalChunks says Local holds, with Delta.
func (o PullOptions) toWrite(chunks []ChunkBlob) int64 {
	var n int64
	for _, c := range chunks {
		if !o.Delta || o.LocalChunks == nil || o.LocalChunks[c.Offset] != c.RawDigest {
			n += c.Length
		}
	}
	return n
}

// hasLocal says whether Local holds c's bytes at c's offset: by
// LocalChunks when known, else by reading it.
func (o PullOptions) hasLocal(c ChunkBlob) bool {
	if o.LocalChunks != nil {
		return o.LocalChunks[c.Offset] == c.RawDigest
	}
	return localChunk(o.Local, c) != nil
}

// writeChunk writes a chunk's bytes at its offset, and starts writing
// them to the disk (the final sync then has little left to wait for).
func writeChunk(dst *os.File, raw []byte, c ChunkBlob) error {
	if _, err := dst.WriteAt(raw, c.Offset); err != nil {
		return fmt.Errorf("write %s at %d: %w", dst.Name(), c.Offset, err)
	}
	volumes.StartWriteback(dst, c.Offset, c.Length)
	return nil
}

// dataRanges merges the chunks' ranges.
func dataRanges(chunks []ChunkBlob) [][2]int64 {
	var out [][2]int64
	for _, c := range chunks {
		if n := len(out); n > 0 && out[n-1][1] == c.Offset {
			out[n-1][1] = c.Offset + c.Length
		} else {
			out = append(out, [2]int64{c.Offset, c.Offset + c.Length})
		}
	}
	return out
}

// fetchChunk downloads one chunk into bufs and checks it: its blob's
// digest, and that of its bytes, which it returns (in bufs' memory).
func fetchChunk(ctx context.Context, src Source, c ChunkBlob, bufs *buffers) ([]byte, error) {
	rc, err := src.Fetch(ctx, c.descriptor())
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if int64(cap(bufs.blob)) < c.Size+1 {
		bufs.blob = make([]byte, c.Size+1)
	}
	n, err := io.ReadFull(rc, bufs.blob[:c.Size+1])
	if err != io.ErrUnexpectedEOF && err != nil && n != int(c.Size) {
		return nil, err
	}
	if int64(n) != c.Size { // shorter, or longer than its descriptor
		return nil, fmt.Errorf("%w: chunk %s came as %d bytes (%d: more), its manifest says %d", ErrCorrupt, c.Digest, n, c.Size+1, c.Size)
	}
	raw, err := decodeChunkInto(bufs.blob[:n], c.Digest, c.Length, bufs.raw)
	if err != nil {
		return nil, err
	}
	bufs.raw = raw
	if rawDigest(raw) != c.RawDigest {
		return nil, fmt.Errorf("%w: its bytes have another digest than the manifest's %s", ErrCorrupt, c.RawDigest)
	}
	return raw, nil
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
