package transfer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dindstore/dindstore/cache"
	"oras.land/oras-go/v2"
)

// WarmSource is a warm key kept hydrated from an artifact in a registry.
type WarmSource struct {
	// Key is the warm key on this node; Name the reference as given
	// (registry/repository:tag), Tag its tag or digest.
	Key, Name, Tag string
	// Repo is the repository, to pull from and (commits) push to.
	Repo oras.Target
}

// Hydrator keeps a node's warm keys hydrated from a registry: each
// source is pulled at Run's start and every interval after (only the
// changed chunks travel; an unchanged artifact is not pulled at all), and
// a generation committed on this node is pushed back when asked.
type Hydrator struct {
	root     *cache.Root
	sources  map[string]WarmSource
	parallel int
	logf     func(format string, args ...any)
	pushes   chan string

	mu      sync.Mutex
	warming map[string]string // keys in their first pull: what it is at
}

// NewHydrator makes a Hydrator; the keys of sources that do not exist yet
// are warming (see Warming) until their first pull ends.
func NewHydrator(root *cache.Root, sources []WarmSource, parallel int, logf func(string, ...any)) *Hydrator {
	h := &Hydrator{root: root, sources: map[string]WarmSource{}, parallel: parallel, logf: logf,
		pushes: make(chan string, 16), warming: map[string]string{}}
	for _, s := range sources {
		h.sources[s.Key] = s
		if _, err := root.Record(s.Key); errors.Is(err, cache.ErrNotFound) {
			h.warming[s.Key] = "waiting to pull " + s.Name
		}
	}
	return h
}

// Warming says whether key is in its first pull, and how far it is: a
// volume cloned from it would start cold.
func (h *Hydrator) Warming(key string) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	at, ok := h.warming[key]
	return at, ok
}

// Committed asks for the key's new generation to be pushed to its source
// (when it has one); it never blocks.
func (h *Hydrator) Committed(key string) {
	if _, ok := h.sources[key]; !ok {
		return
	}
	select {
	case h.pushes <- key:
	default:
		h.logf("push of %s skipped: too many pushes queued (the next commit pushes it)", key)
	}
}

// Run hydrates every source now and every interval (0: once), and pushes
// what Committed asks, until ctx ends.
func (h *Hydrator) Run(ctx context.Context, interval time.Duration) {
	var wg sync.WaitGroup
	for _, s := range h.sources {
		wg.Add(1)
		go func() { defer wg.Done(); h.keepHydrated(ctx, s, interval) }()
	}
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case key := <-h.pushes:
			h.push(ctx, h.sources[key])
		}
	}
}

// keepHydrated pulls s now and every interval.
func (h *Hydrator) keepHydrated(ctx context.Context, s WarmSource, interval time.Duration) {
	for {
		h.hydrate(ctx, s)
		if interval <= 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// hydrate pulls s once, logging what it did.
func (h *Hydrator) hydrate(ctx context.Context, s WarmSource) {
	start := time.Now()
	opts := PullOptions{Parallel: h.parallel, Name: s.Name, Progress: h.progress(s)}
	res, err := PullCache(ctx, h.root, s.Repo, s.Tag, s.Key, opts)
	h.mu.Lock()
	delete(h.warming, s.Key)
	h.mu.Unlock()
	switch {
	case err != nil:
		h.logf("warm source %s from %s: %v", s.Key, s.Name, err)
	case res.Unchanged:
	default:
		h.logf("warm source %s: generation %d from %s in %s: %d chunks fetched (%d bytes), %d from disk, %d resumed",
			s.Key, res.Record.Generation, res.Record.Pulled, time.Since(start).Round(time.Millisecond), res.Fetched,
			res.FetchedBytes, res.Local, res.Resumed)
	}
}

// progress keeps a first pull's progress for Warming.
func (h *Hydrator) progress(s WarmSource) func(n, total int64) {
	var done int64
	return func(n, total int64) {
		if n > 0 {
			done += n
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, first := h.warming[s.Key]; first {
			h.warming[s.Key] = fmt.Sprintf("pulling %s: %d of %d MiB", s.Name, done>>20, total>>20)
		}
	}
}

// push pushes key's current generation to its source.
func (h *Hydrator) push(ctx context.Context, s WarmSource) {
	res, err := PushCache(ctx, h.root, s.Key, s.Repo, s.Tag, s.Name, h.parallel)
	if err != nil {
		h.logf("push the committed %s to %s: %v", s.Key, s.Name, err)
		return
	}
	h.logf("pushed the committed %s (generation %d) to %s@%s: %d chunks sent (%d bytes), %d already there",
		s.Key, res.Config.Generation, s.Name, res.Manifest.Digest, res.Sent, res.SentBytes, res.Skipped)
}
