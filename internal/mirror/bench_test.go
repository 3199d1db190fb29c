package mirror_test

import (
	"crypto/sha256"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/registrytest"
)

// BenchmarkPull pulls a blob from an upstream directly, and through a mirror of it: the
// first pull (fetched, spooled and streamed at once) and the second (local), and
// reports the time of each and their ratios. Upstream and
// mirror are served in this process, on the embedded stores, over loopback; the client
// reads the blob to the end and hashes nothing. GRAFT_BENCH_MIB sets the blob's size
// (64 MiB by default; bench/mirror.sh measures 256 MiB with graft serve processes).
func BenchmarkPull(b *testing.B) {
	size := int64(64 << 20)
	if v, err := strconv.Atoi(os.Getenv("GRAFT_BENCH_MIB")); err == nil && v > 0 {
		size = int64(v) << 20
	}
	up := startUpstream(b, registrytest.SQLite)
	m := startMirror(b, registrytest.SQLite, up)
	seed := uint64(0)
	// push stores a fresh blob upstream and returns its digest.
	push := func() digest.Digest {
		seed++
		var key [32]byte
		binary.LittleEndian.PutUint64(key[:], seed)
		blob := func() io.Reader { return io.LimitReader(rand.NewChaCha8(key), size) }
		h := sha256.New()
		io.Copy(h, blob())
		d := digest.NewDigest(digest.SHA256, h)
		r, err := up.Try(b.Context(), http.MethodPost, "/v2/library/bench/blobs/uploads/?digest="+d.String(), blob(),
			"Content-Type", "application/octet-stream")
		if err != nil || r.Status != http.StatusCreated {
			b.Fatalf("pushing upstream: %v %v", err, r)
		}
		return d
	}
	get := func(url string) {
		resp, err := http.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		if n, err := io.Copy(io.Discard, resp.Body); err != nil || n != size || resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %d, %d bytes, %v", url, resp.StatusCode, n, err)
		}
	}
	// Each round times the three pulls of a fresh blob one after the other, so that a
	// machine whose load swings between rounds weighs on the three alike.
	var direct, first, second time.Duration
	timed := func(url string) time.Duration {
		start := time.Now()
		get(url)
		return time.Since(start)
	}
	fetched := m.metric(b, `graft_mirror_upstream_blob_bytes_total{mirror="hub/"}`)
	for b.Loop() {
		b.StopTimer()
		d := push()
		path := "/library/bench/blobs/" + d.String()
		get(up.URL + "/v2" + path) // the upstream's page cache, as warm for the mirror as for the direct pull
		b.StartTimer()
		direct += timed(up.URL + "/v2" + path)
		first += timed(m.URL + "/v2/hub" + path)
		// the second pull is timed once the store holds the blob, not while it writes it
		fetched += float64(size)
		for m.metric(b, `graft_mirror_upstream_blob_bytes_total{mirror="hub/"}`) < fetched {
			time.Sleep(10 * time.Millisecond)
		}
		second += timed(m.URL + "/v2/hub" + path)
	}
	n := float64(b.N)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(direct.Milliseconds())/n, "direct-ms/pull")
	b.ReportMetric(float64(first.Milliseconds())/n, "first-ms/pull")
	b.ReportMetric(float64(second.Milliseconds())/n, "second-ms/pull")
	b.ReportMetric(first.Seconds()/direct.Seconds(), "first/direct")
	b.ReportMetric(second.Seconds()/direct.Seconds(), "second/direct")
}
