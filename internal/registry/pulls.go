package registry

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/metastore"
)

// Pull times are kept in memory and written to the store in batches: a pull costs a
// map write on its hot path, and the store one transaction per flush for all the
// manifests and tags pulled since the last one, however often each was. A process that
// dies loses the pulls since its last flush, which only makes retention keep less.

// pullBatch is how many pulls one transaction of a flush records.
const pullBatch = 500

type pullKey struct {
	repo   string
	digest digest.Digest
	tag    string
}

type pulls struct {
	mu   sync.Mutex
	last map[pullKey]time.Time
}

// RecordPull notes that manifest d of repo was pulled now, by tag when tag is not "".
// It is written to the store by the next FlushPulls; it does nothing unless
// Options.TrackPulls is set.
func (r *Registry) RecordPull(repo string, d digest.Digest, tag string) {
	if !r.opts.TrackPulls {
		return
	}
	now := r.now()
	p := &r.pulls
	p.mu.Lock()
	if p.last == nil {
		p.last = map[pullKey]time.Time{}
	}
	p.last[pullKey{repo, d, tag}] = now
	p.mu.Unlock()
}

// FlushPulls writes the pulls recorded since the last flush. Those it could not write
// are kept for the next.
func (r *Registry) FlushPulls(ctx context.Context) error {
	p := &r.pulls
	p.mu.Lock()
	last := p.last
	p.last = nil
	p.mu.Unlock()
	// In one order on every replica: two flushes that update rows in different orders
	// deadlock on PostgreSQL, and each such deadlock costs deadlock_timeout.
	keys := slices.SortedFunc(maps.Keys(last), func(a, b pullKey) int {
		return cmp.Or(strings.Compare(a.repo, b.repo), strings.Compare(string(a.digest), string(b.digest)), strings.Compare(a.tag, b.tag))
	})
	for len(keys) > 0 {
		batch := keys[:min(pullBatch, len(keys))]
		ps := make([]metastore.Pull, len(batch))
		for i, k := range batch {
			ps[i] = metastore.Pull{Repo: k.repo, Digest: k.digest, Tag: k.tag, At: last[k]}
		}
		err := r.meta.RecordPulls(ctx, ps)
		if err != nil {
			p.mu.Lock() // keep what is not written, unless pulled again since
			for _, k := range keys {
				if _, again := p.last[k]; !again {
					if p.last == nil {
						p.last = map[pullKey]time.Time{}
					}
					p.last[k] = last[k]
				}
			}
			p.mu.Unlock()
			return internal("record pulls", err)
		}
		keys = keys[len(batch):]
	}
	return nil
}

// RunPulls flushes the recorded pulls every interval until ctx ends. Whoever stops it
// flushes once more, after the last request.
func (r *Registry) RunPulls(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := r.FlushPulls(ctx); err != nil && ctx.Err() == nil {
			r.log.Error("recording pulls failed", "err", err)
		}
	}
}
