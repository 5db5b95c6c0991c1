// Package transfer moves a loop cache's image between hosts as an OCI
// artifact: the image split into fixed-size chunks at fixed offsets (a
// block filesystem changes in place, so equal offsets dedupe across
// generations), holes skipped, each non-empty chunk compressed with zstd
// and named by its digest, and a manifest that lists them with what a
// puller must know to rebuild the image (its size, filesystem, block size,
// image store, generation, and a digest of the whole image).
//
// This file set holds the format: the chunk plan (PlanChunks), the
// encoding of one chunk (EncodeChunk, DecodeChunk) and the manifest
// (Manifest, ParseManifest). It sits beside package cache, on top of
// volumes; cache does not import it.
package transfer
