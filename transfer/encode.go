package transfer

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
)

// ErrCorrupt means a chunk or image does not match the digest or length
// its manifest gives: it was damaged on the way or in the registry.
var ErrCorrupt = errors.New("corrupt transfer")

// zstd coders are safe for concurrent EncodeAll/DecodeAll and costly to
// make: one of each per process.
var (
	coders     sync.Once
	encoder    *zstd.Encoder
	decoder    *zstd.Decoder
	codersErr  error
	maxDecoded = uint64(MaxChunkSize)
)

func zstdCoders() (*zstd.Encoder, *zstd.Decoder, error) {
	coders.Do(func() {
		if encoder, codersErr = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault)); codersErr != nil {
			return
		}
		decoder, codersErr = zstd.NewReader(nil, zstd.WithDecoderMaxMemory(maxDecoded), zstd.WithDecoderConcurrency(0))
	})
	return encoder, decoder, codersErr
}

// EncodeChunk reads chunk c of the image and returns it compressed, with
// the digest that names the compressed blob.
func EncodeChunk(image io.ReaderAt, c Chunk) ([]byte, digest.Digest, error) {
	blob, d, _, err := encodeChunk(image, c)
	return blob, d, err
}

// encodeChunk is EncodeChunk that also gives the digest of the
// uncompressed bytes.
func encodeChunk(image io.ReaderAt, c Chunk) ([]byte, digest.Digest, digest.Digest, error) {
	if c.Length <= 0 || c.Length > MaxChunkSize || c.Offset < 0 {
		return nil, "", "", fmt.Errorf("%w: chunk at %d of %d bytes", ErrInvalid, c.Offset, c.Length)
	}
	raw := make([]byte, c.Length)
	if n, err := image.ReadAt(raw, c.Offset); int64(n) != c.Length {
		return nil, "", "", fmt.Errorf("read the chunk at %d: %d of %d bytes: %w", c.Offset, n, c.Length, err)
	}
	enc, _, err := zstdCoders()
	if err != nil {
		return nil, "", "", err
	}
	blob := enc.EncodeAll(raw, make([]byte, 0, len(raw)/2))
	return blob, digest.FromBytes(blob), rawDigest(raw), nil
}

// DecodeChunk checks blob against the digest the manifest names it by,
// and returns it decompressed, which must be exactly length bytes.
func DecodeChunk(blob []byte, want digest.Digest, length int64) ([]byte, error) {
	return decodeChunkInto(blob, want, length, nil)
}

// decodeChunkInto is DecodeChunk that decompresses into buf's memory when
// it is large enough.
func decodeChunkInto(blob []byte, want digest.Digest, length int64, buf []byte) ([]byte, error) {
	if err := want.Validate(); err != nil {
		return nil, fmt.Errorf("%w: chunk digest %q: %w", ErrInvalid, want, err)
	}
	if got := want.Algorithm().FromBytes(blob); got != want {
		return nil, fmt.Errorf("%w: a chunk named %s has digest %s", ErrCorrupt, want, got)
	}
	if length <= 0 || length > MaxChunkSize {
		return nil, fmt.Errorf("%w: chunk %s of %d bytes", ErrInvalid, want, length)
	}
	_, dec, err := zstdCoders()
	if err != nil {
		return nil, err
	}
	if int64(cap(buf)) < length {
		buf = make([]byte, 0, length)
	}
	raw, err := dec.DecodeAll(blob, buf[:0])
	if err != nil {
		return nil, fmt.Errorf("%w: chunk %s: %w", ErrCorrupt, want, err)
	}
	if int64(len(raw)) != length {
		return nil, fmt.Errorf("%w: chunk %s holds %d bytes, its manifest says %d", ErrCorrupt, want, len(raw), length)
	}
	return raw, nil
}
