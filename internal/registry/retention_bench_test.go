package registry

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/pattern"
)

// BenchmarkGCDryRun times a dry run of a collection over a registry of many
// repositories, with no policy and with a retention policy that selects every
// repository and removes half its tags. GRAFT_BENCH_MANIFESTS sets the registry's size
// (10,000 manifests by default; the README's figure is of 100,000), in repositories of
// 100 manifests, half of them tagged.
func BenchmarkGCDryRun(b *testing.B) {
	total := 10_000
	if v, err := strconv.Atoi(os.Getenv("GRAFT_BENCH_MANIFESTS")); err == nil && v > 0 {
		total = v
	}
	const perRepo = 100
	for _, dep := range []struct {
		name string
		open func(testing.TB) *Registry
	}{{"embedded", openEmbedded}, {"scale-out", openScaleOut}} {
		b.Run(dep.name, func(b *testing.B) {
			r := dep.open(b)
			ctx := b.Context()
			start := time.Now().Add(-1000 * time.Hour) // all of it old
			r.meta.(interface{ SetClock(func() time.Time) }).SetClock(func() time.Time { return start })
			for repo := range total / perRepo {
				name := fmt.Sprintf("team/app%04d", repo)
				var ms []*metastore.Manifest
				for i := range perRepo {
					ms = append(ms, benchManifest(name, fmt.Sprint(i)))
				}
				err := r.meta.Update(ctx, func(tx metastore.Tx) error {
					for i, m := range ms {
						if err := tx.PutManifest(ctx, m); err != nil {
							return err
						}
						if i%2 == 0 {
							if err := tx.SetTag(ctx, name, fmt.Sprintf("v%d", i), m.Digest); err != nil {
								return err
							}
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			keep, _ := pattern.Tags([]string{"v*"})
			for _, withPolicy := range []bool{false, true} {
				b.Run(fmt.Sprint("policy=", withPolicy), func(b *testing.B) {
					r.opts.Retention = nil
					if withPolicy {
						all, _ := pattern.Repositories([]string{"**"})
						r.opts.Retention = []RetentionPolicy{{Name: "all", Repositories: all, KeepTags: keep, KeepLast: perRepo / 4}}
					}
					for b.Loop() {
						rep, err := r.GC(ctx, GCOptions{Delay: time.Hour, DryRun: true})
						if err != nil {
							b.Fatal(err)
						}
						wantTags := 0
						if withPolicy {
							wantTags = total / 4
						}
						if len(rep.Tags) != wantTags {
							b.Fatalf("the dry run removes %d tags, want %d", len(rep.Tags), wantTags)
						}
					}
					b.ReportMetric(float64(total), "manifests")
				})
			}
		})
	}
}
