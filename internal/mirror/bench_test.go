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

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/registrytest"
)

// BenchmarkPull pulls a blob from an upstream directly, and through a mirror of it: the
// first pull (fetched, stored and streamed at once) and the second (local). Upstream and
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
	b.Run("direct", func(b *testing.B) {
		d := push()
		b.SetBytes(size)
		for b.Loop() {
			get(up.URL + "/v2/library/bench/blobs/" + d.String())
		}
	})
	b.Run("mirror-first", func(b *testing.B) {
		b.SetBytes(size)
		for range b.N {
			b.StopTimer()
			d := push()
			get(up.URL + "/v2/library/bench/blobs/" + d.String()) // as warm as for direct
			b.StartTimer()
			get(m.URL + "/v2/hub/library/bench/blobs/" + d.String())
		}
	})
	b.Run("mirror-second", func(b *testing.B) {
		d := push()
		get(m.URL + "/v2/hub/library/bench/blobs/" + d.String())
		b.SetBytes(size)
		for b.Loop() {
			get(m.URL + "/v2/hub/library/bench/blobs/" + d.String())
		}
	})
}
