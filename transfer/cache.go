package transfer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"github.com/opencontainers/go-digest"
	"os"
	"strings"

	"github.com/dindstore/dindstore/cache"
	"github.com/dindstore/dindstore/volumes"
	"oras.land/oras-go/v2"
)

// PushCache pushes the idle loop cache key of root to target, tagged tag,
// under the cache's lock (cache.Root.Export: uses wait meanwhile). name,
// when not empty, is the reference as the user gave it: the key's record
// then says its image is that artifact (a pull of it has nothing to do).
func PushCache(ctx context.Context, root *cache.Root, key string, target oras.Target, tag, name string, parallel int) (PushResult, error) {
	var res PushResult
	err := root.Export(ctx, key, func(image *os.File, info *cache.ExportInfo) error {
		cfg := Config{FS: string(info.FS), BlockSize: info.BlockSize, FSUUID: info.FSUUID,
			ImageStore: info.ImageStore, Generation: info.Generation}
		var err error
		res, err = Push(ctx, target, image, cfg, tag, parallel)
		if err == nil && name != "" {
			info.Source = sourceName(name, res.Manifest.Digest.String())
		}
		return err
	})
	return res, err
}

// CachePull says what PullCache did.
type CachePull struct {
	PullResult
	// Unchanged says the key holds the artifact already (its record
	// names the same digest): nothing was pulled.
	Unchanged bool
	// Record is the key's record after the pull.
	Record *cache.Record
}

// PullCache makes the loop cache key of root, or its next generation when
// it exists, from the artifact ref of src (cache.Root.Pull: nothing is
// switched until the whole image is in and checked; a pull cut short is
// resumed by the next). The reference is resolved once; a key whose
// current generation came from the same manifest is left as it is.
// opts.Local and opts.Delta are set by PullCache (the key's current
// image: what differs from it is applied onto it).
func PullCache(ctx context.Context, root *cache.Root, src Source, ref, key string, opts PullOptions) (CachePull, error) {
	out := CachePull{}
	if err := root.FinishPull(ctx, key); err != nil {
		return out, err
	}
	desc, err := src.Resolve(ctx, ref)
	if err != nil {
		return out, classify(fmt.Errorf("resolve %s: %w", ref, err))
	}
	source := sourceName(cmp.Or(opts.Name, ref), desc.Digest.String())
	rec, err := root.Record(key)
	switch {
	case err == nil && rec.Pulled == source:
		out.Unchanged, out.Record, out.Manifest = true, rec, desc
		return out, nil
	case err == nil:
		opts.LocalChunks = knownChunks(ctx, src, rec.Pulled)
	case !errors.Is(err, cache.ErrNotFound):
		return out, err
	}
	opts.Admit = root.CheckPullRoom
	out.Record, err = root.Pull(ctx, key, func(dst, local *os.File) (cache.ImportInfo, error) {
		opts.Local, opts.Delta = local, local != nil
		res, err := PullManifest(ctx, src, desc, dst, opts)
		out.PullResult = res
		return cache.ImportInfo{FS: volumes.FS(res.Config.FS), ImageStore: res.Config.ImageStore,
			Generation: res.Config.Generation, Source: source, Size: res.Config.ImageSize, Ranges: res.Ranges}, err
	})
	return out, err
}

// knownChunks are the raw digests by offset of the artifact a record's
// Pulled names (reference@digest), when src still has it: the key's image
// is that artifact byte for byte (see cache.Record.Pulled). nil when
// unknown: the image is then read to compare.
func knownChunks(ctx context.Context, src Source, pulled string) map[int64]digest.Digest {
	i := strings.LastIndex(pulled, "@")
	if i < 0 {
		return nil
	}
	desc, err := src.Resolve(ctx, pulled[i+1:])
	if err != nil {
		return nil
	}
	m, cfg, err := fetchManifest(ctx, src, desc)
	if err != nil {
		return nil
	}
	chunks, err := ParseChunks(m, cfg)
	if err != nil {
		return nil
	}
	out := make(map[int64]digest.Digest, len(chunks))
	for _, c := range chunks {
		out[c.Offset] = c.RawDigest
	}
	return out
}

// sourceName is what a record keeps of where its image came from.
func sourceName(ref, dgst string) string {
	return ref + "@" + dgst
}
