package metastore

import (
	"context"
	"iter"

	"github.com/opencontainers/go-digest"
)

// PageSize is how many entries All fetches at a time.
const PageSize = 1000

// All pages through a listing: it calls list with the key of the last entry it
// yielded (the zero K at first) until a page comes back short, and yields each entry.
// It stops at the first error, yielding it. key returns the key of an entry, which
// list continues after.
//
//	for repo, err := range metastore.All(ctx, s.RepositoryList, Repository.Key) { … }
func All[K any, T any](ctx context.Context, list func(ctx context.Context, after K, n int) ([]T, error), key func(T) K) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var after K
		for {
			page, err := list(ctx, after, PageSize)
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, v := range page {
				if !yield(v, nil) {
					return
				}
			}
			if len(page) < PageSize {
				return
			}
			after = key(page[len(page)-1])
		}
	}
}

// Key is the key a listing of repositories continues after.
func (r Repository) Key() string { return r.Name }

// Key is the key a listing of manifests continues after.
func (m Manifest) Key() digest.Digest { return m.Digest }

// Key is the key a listing of garbage collection's nodes continues after.
func (n Node) Key() digest.Digest { return n.Digest }

// Itself is the key of a listing of keys, such as digests.
func Itself[K any](k K) K { return k }
