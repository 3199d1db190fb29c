package e2e

import (
	"bytes"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"testing"
	"testing/iotest"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/apitest"
	"github.com/graft-registry/graft/internal/graftest"
)

// testData returns n bytes of content determined by seed.
func testData(seed string, n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%s-%d;", seed, i)
	}
	return b.Bytes()[:n]
}

// wantBlob checks that repo serves d with content data.
func wantBlob(t *testing.T, srv *graftest.Server, repo string, d digest.Digest, data []byte) {
	t.Helper()
	path := "/v2/" + repo + "/blobs/" + d.String()
	r := srv.Do(t, http.MethodGet, path, nil)
	apitest.WantStatus(t, "GET "+path, r, http.StatusOK)
	if !bytes.Equal(r.Body, data) {
		t.Errorf("GET %s: %d bytes that differ from the %d uploaded", path, len(r.Body), len(data))
	}
	apitest.WantHeader(t, "GET "+path, r, "Docker-Content-Digest", d.String())
}

// wantNoBlob checks that repo does not serve d.
func wantNoBlob(t *testing.T, srv *graftest.Server, repo string, d digest.Digest) {
	t.Helper()
	path := "/v2/" + repo + "/blobs/" + d.String()
	apitest.WantError(t, "GET "+path, srv.Do(t, http.MethodGet, path, nil), http.StatusNotFound, "BLOB_UNKNOWN")
	if s := srv.Do(t, http.MethodHead, path, nil).Status; s != http.StatusNotFound {
		t.Errorf("HEAD %s: status %d, want 404", path, s)
	}
}

func TestBlobUploads(t *testing.T) {
	t.Parallel()
	srv := graftest.Start(t)

	t.Run("chunked", func(t *testing.T) {
		data := testData("chunked", 3*100_000+17)
		d := digest.FromBytes(data)
		loc := srv.StartUpload(t, "up/chunked")
		chunks := [][]byte{data[:100_000], data[100_000:250_000], data[250_000:]}
		off := 0
		for i, c := range chunks {
			r := srv.Do(t, http.MethodPatch, loc, c,
				"Content-Type", "application/octet-stream",
				"Content-Range", fmt.Sprintf("%d-%d", off, off+len(c)-1))
			apitest.WantStatus(t, fmt.Sprintf("PATCH chunk %d", i), r, http.StatusAccepted)
			off += len(c)
			apitest.WantHeader(t, fmt.Sprintf("PATCH chunk %d", i), r, "Range", fmt.Sprintf("0-%d", off-1))
			if r.Header.Get("Location") == "" {
				t.Fatalf("PATCH chunk %d: no Location", i)
			}
			loc = r.Header.Get("Location")

			st := srv.Do(t, http.MethodGet, loc, nil)
			apitest.WantStatus(t, "upload status", st, http.StatusNoContent)
			apitest.WantHeader(t, "upload status", st, "Range", fmt.Sprintf("0-%d", off-1))
		}
		// A chunk that does not start where the upload ends is refused, and the
		// answer says where it stands.
		r := srv.Do(t, http.MethodPatch, loc, []byte("late"), "Content-Type", "application/octet-stream",
			"Content-Range", "10-13")
		apitest.WantStatus(t, "out-of-order chunk", r, http.StatusRequestedRangeNotSatisfiable)
		apitest.WantHeader(t, "out-of-order chunk", r, "Range", fmt.Sprintf("0-%d", len(data)-1))

		r = srv.Do(t, http.MethodPut, apitest.WithQuery(loc, "digest", d.String()), nil)
		apitest.WantStatus(t, "PUT ?digest=", r, http.StatusCreated)
		apitest.WantHeader(t, "PUT ?digest=", r, "Location", "/v2/up/chunked/blobs/"+d.String())
		apitest.WantHeader(t, "PUT ?digest=", r, "Docker-Content-Digest", d.String())
		wantBlob(t, srv, "up/chunked", d, data)
		// The session is over.
		apitest.WantError(t, "status after PUT", srv.Do(t, http.MethodGet, loc, nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	})

	t.Run("refused chunk keeps nothing", func(t *testing.T) {
		// A chunk whose body is not the size its Content-Range declares is refused;
		// the upload must stay as it was, so that the client can send the chunk
		// again from where the registry says the upload stands.
		data := testData("refused chunk", 300)
		d := digest.FromBytes(data)
		for _, tc := range []struct {
			name, method string
			body         []byte
		}{
			{"PATCH shorter than its range", http.MethodPatch, data[100:150]},
			{"PATCH longer than its range", http.MethodPatch, data[100:]},
			{"PUT shorter than its range", http.MethodPut, data[100:150]},
		} {
			t.Run(tc.name, func(t *testing.T) {
				loc := srv.StartUpload(t, "up/refused")
				r := srv.Do(t, http.MethodPatch, loc, data[:100], "Content-Type", "application/octet-stream",
					"Content-Range", "0-99")
				apitest.WantStatus(t, "first chunk", r, http.StatusAccepted)
				loc = r.Header.Get("Location")
				target := loc
				if tc.method == http.MethodPut {
					target = apitest.WithQuery(loc, "digest", d.String())
				}
				// Sent chunked: without a Content-Length the registry learns the
				// size only by reading the body.
				r = srv.DoStream(t, tc.method, target, bytes.NewReader(tc.body),
					"Content-Type", "application/octet-stream", "Content-Range", "100-199")
				if r.Status < 400 || r.Status > 499 {
					t.Fatalf("got %v, want a 4xx refusal", r)
				}
				st := srv.Do(t, http.MethodGet, loc, nil)
				apitest.WantStatus(t, "status after the refusal", st, http.StatusNoContent)
				if rg := st.Header.Get("Range"); rg != "0-99" {
					t.Errorf("after refusing %d bytes for range 100-199 (%v): Range %q, want 0-99",
						len(tc.body), r, rg)
				}
				r = srv.Do(t, http.MethodPatch, loc, data[100:200], "Content-Type", "application/octet-stream",
					"Content-Range", "100-199")
				apitest.WantStatus(t, "sending the chunk again", r, http.StatusAccepted)
				r = srv.Do(t, http.MethodPut, apitest.WithQuery(r.Header.Get("Location"), "digest", d.String()), data[200:],
					"Content-Type", "application/octet-stream", "Content-Range", "200-299")
				apitest.WantStatus(t, "PUT", r, http.StatusCreated)
				wantBlob(t, srv, "up/refused", d, data)
			})
		}
	})

	t.Run("chunk cut short keeps nothing", func(t *testing.T) {
		// A client that dies in the middle of a chunk: the registry gets fewer
		// bytes than the Content-Length it was promised. The upload must not keep
		// the torn chunk: the client that resumes asks where the upload stands and
		// sends the chunk again.
		data := testData("torn chunk", 300)
		d := digest.FromBytes(data)
		loc := srv.StartUpload(t, "up/torn")
		r := srv.Do(t, http.MethodPatch, loc, data[:100], "Content-Type", "application/octet-stream",
			"Content-Range", "0-99")
		apitest.WantStatus(t, "first chunk", r, http.StatusAccepted)
		loc = r.Header.Get("Location")

		before := srv.Requests(http.MethodPatch, loc)
		conn, err := net.Dial("tcp", srv.Addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\n"+
			"Content-Range: 100-199\r\nContent-Length: 100\r\n\r\n", loc, srv.Addr)
		conn.Write(data[100:150])
		conn.Close()
		waitLogged(t, srv, http.MethodPatch, loc, before+1)

		st := srv.Do(t, http.MethodGet, loc, nil)
		apitest.WantStatus(t, "status after the torn chunk", st, http.StatusNoContent)
		if rg := st.Header.Get("Range"); rg != "0-99" {
			t.Errorf("after a chunk cut short at 50 of its 100 bytes: Range %q, want 0-99", rg)
		}
		r = srv.Do(t, http.MethodPatch, loc, data[100:], "Content-Type", "application/octet-stream",
			"Content-Range", "100-299")
		apitest.WantStatus(t, "sending the chunk again", r, http.StatusAccepted)
		r = srv.Do(t, http.MethodPut, apitest.WithQuery(r.Header.Get("Location"), "digest", d.String()), nil)
		apitest.WantStatus(t, "PUT", r, http.StatusCreated)
		wantBlob(t, srv, "up/torn", d, data)
	})

	t.Run("last chunk in PUT", func(t *testing.T) {
		data := testData("last chunk", 50_000)
		d := digest.FromBytes(data)
		loc := srv.StartUpload(t, "up/lastchunk")
		r := srv.Do(t, http.MethodPatch, loc, data[:20_000], "Content-Type", "application/octet-stream",
			"Content-Range", "0-19999")
		apitest.WantStatus(t, "PATCH", r, http.StatusAccepted)
		r = srv.Do(t, http.MethodPut, apitest.WithQuery(r.Header.Get("Location"), "digest", d.String()), data[20_000:],
			"Content-Type", "application/octet-stream", "Content-Range", "20000-49999")
		apitest.WantStatus(t, "PUT with the last chunk", r, http.StatusCreated)
		wantBlob(t, srv, "up/lastchunk", d, data)
	})

	t.Run("streamed", func(t *testing.T) {
		data := testData("streamed", 700_001)
		d := digest.FromBytes(data)
		loc := srv.StartUpload(t, "up/streamed")
		// No Content-Range and no Content-Length: the body goes out chunked, in
		// small reads.
		for i, part := range [][]byte{data[:300_000], data[300_000:]} {
			r := srv.DoStream(t, http.MethodPatch, loc, iotest.HalfReader(bytes.NewReader(part)),
				"Content-Type", "application/octet-stream")
			apitest.WantStatus(t, fmt.Sprintf("streamed PATCH %d", i), r, http.StatusAccepted)
			loc = r.Header.Get("Location")
		}
		st := srv.Do(t, http.MethodGet, loc, nil)
		apitest.WantStatus(t, "upload status", st, http.StatusNoContent)
		apitest.WantHeader(t, "upload status", st, "Range", fmt.Sprintf("0-%d", len(data)-1))
		r := srv.Do(t, http.MethodPut, apitest.WithQuery(loc, "digest", d.String()), nil)
		apitest.WantStatus(t, "PUT ?digest=", r, http.StatusCreated)
		wantBlob(t, srv, "up/streamed", d, data)
	})

	t.Run("monolithic", func(t *testing.T) {
		data := testData("monolithic", 12_345)
		d := digest.FromBytes(data)
		r := srv.Do(t, http.MethodPost, "/v2/up/mono/blobs/uploads/?digest="+d.String(), data,
			"Content-Type", "application/octet-stream")
		apitest.WantStatus(t, "POST ?digest=", r, http.StatusCreated)
		apitest.WantHeader(t, "POST ?digest=", r, "Location", "/v2/up/mono/blobs/"+d.String())
		apitest.WantHeader(t, "POST ?digest=", r, "Docker-Content-Digest", d.String())
		wantBlob(t, srv, "up/mono", d, data)

		// Content that does not match its digest is refused and not stored.
		other := digest.FromString("something else")
		r = srv.Do(t, http.MethodPost, "/v2/up/mono/blobs/uploads/?digest="+other.String(), data,
			"Content-Type", "application/octet-stream")
		apitest.WantError(t, "POST with a wrong digest", r, http.StatusBadRequest, "DIGEST_INVALID")
		wantNoBlob(t, srv, "up/mono", other)
	})

	t.Run("empty blob", func(t *testing.T) {
		d := digest.FromBytes(nil)
		loc := srv.StartUpload(t, "up/empty")
		r := srv.Do(t, http.MethodPut, apitest.WithQuery(loc, "digest", d.String()), nil)
		apitest.WantStatus(t, "PUT of an empty blob", r, http.StatusCreated)
		wantBlob(t, srv, "up/empty", d, []byte{})
		head := srv.Do(t, http.MethodHead, "/v2/up/empty/blobs/"+d.String(), nil)
		apitest.WantStatus(t, "HEAD of an empty blob", head, http.StatusOK)
		apitest.WantHeader(t, "HEAD of an empty blob", head, "Content-Length", "0")
		r = srv.Do(t, http.MethodPost, "/v2/up/empty2/blobs/uploads/?digest="+d.String(), nil)
		apitest.WantStatus(t, "monolithic empty blob", r, http.StatusCreated)
		wantBlob(t, srv, "up/empty2", d, []byte{})
	})

	t.Run("status and cancel", func(t *testing.T) {
		loc := srv.StartUpload(t, "up/cancel")
		r := srv.Do(t, http.MethodPatch, loc, []byte("0123456789"), "Content-Type", "application/octet-stream",
			"Content-Range", "0-9")
		apitest.WantStatus(t, "PATCH", r, http.StatusAccepted)
		loc = r.Header.Get("Location")
		st := srv.Do(t, http.MethodGet, loc, nil)
		apitest.WantStatus(t, "status", st, http.StatusNoContent)
		apitest.WantHeader(t, "status", st, "Range", "0-9")
		if st.Header.Get("Docker-Upload-UUID") == "" {
			t.Error("status: no Docker-Upload-UUID")
		}

		del := srv.Do(t, http.MethodDelete, loc, nil)
		apitest.WantStatus(t, "DELETE upload", del, http.StatusNoContent)
		apitest.WantError(t, "status after cancel", srv.Do(t, http.MethodGet, loc, nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
		apitest.WantError(t, "PATCH after cancel", srv.Do(t, http.MethodPatch, loc, []byte("x"),
			"Content-Type", "application/octet-stream"), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
		apitest.WantError(t, "PUT after cancel", srv.Do(t, http.MethodPut, apitest.WithQuery(loc, "digest", digest.FromString("0123456789").String()), nil),
			http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
		apitest.WantError(t, "DELETE after cancel", srv.Do(t, http.MethodDelete, loc, nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	})

	t.Run("session of another repository", func(t *testing.T) {
		loc := srv.StartUpload(t, "up/a")
		u, err := url.Parse(loc)
		if err != nil {
			t.Fatal(err)
		}
		id := filepath.Base(u.Path)
		viaB := "/v2/up/b/blobs/uploads/" + id
		data := []byte("a apitest.Blob of repository a")
		d := digest.FromBytes(data)
		srv.PushBlob(t, "up/b", []byte("repository b exists")) // b exists, and still does not know a's session
		for _, tc := range []struct {
			method, target string
			body           []byte
		}{
			{http.MethodGet, viaB, nil},
			{http.MethodPatch, viaB, data},
			{http.MethodPut, apitest.WithQuery(viaB, "digest", d.String()), data},
			{http.MethodDelete, viaB, nil},
		} {
			r := srv.Do(t, tc.method, tc.target, tc.body, "Content-Type", "application/octet-stream")
			apitest.WantError(t, tc.method+" of a's session through b", r, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
		}
		// Nothing reached the session through b: it is still empty and works in a.
		st := srv.Do(t, http.MethodGet, loc, nil)
		apitest.WantStatus(t, "status in a", st, http.StatusNoContent)
		if rg := st.Header.Get("Range"); rg != "0-0" && rg != "" {
			t.Errorf("status in a: Range %q after requests through b, want an empty upload", rg)
		}
		r := srv.Do(t, http.MethodPut, apitest.WithQuery(loc, "digest", d.String()), data, "Content-Type", "application/octet-stream")
		apitest.WantStatus(t, "PUT in a", r, http.StatusCreated)
		wantBlob(t, srv, "up/a", d, data)
		wantNoBlob(t, srv, "up/b", d)
	})
}

func TestBlobRanges(t *testing.T) {
	t.Parallel()
	srv := graftest.Start(t)
	data := testData("ranges", 1000)
	d := srv.PushBlob(t, "ranged", data)
	path := "/v2/ranged/blobs/" + d.String()

	for _, tc := range []struct {
		rng        string
		start, end int // inclusive
	}{
		{"bytes=0-0", 0, 0},
		{"bytes=10-19", 10, 19},
		{"bytes=990-", 990, 999},
		{"bytes=-5", 995, 999},
		{"bytes=500-5000", 500, 999},
	} {
		r := srv.Do(t, http.MethodGet, path, nil, "Range", tc.rng)
		apitest.WantStatus(t, tc.rng, r, http.StatusPartialContent)
		apitest.WantHeader(t, tc.rng, r, "Content-Range", fmt.Sprintf("bytes %d-%d/1000", tc.start, tc.end))
		if !bytes.Equal(r.Body, data[tc.start:tc.end+1]) {
			t.Errorf("%s: body %q, want %q", tc.rng, r.Body, data[tc.start:tc.end+1])
		}
	}

	// Several ranges: a multipart answer, one part per range.
	r := srv.Do(t, http.MethodGet, path, nil, "Range", "bytes=0-4,100-109,995-")
	apitest.WantStatus(t, "several ranges", r, http.StatusPartialContent)
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/byteranges" {
		t.Fatalf("several ranges: Content-Type %q", r.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(bytes.NewReader(r.Body), params["boundary"])
	for i, want := range [][2]int{{0, 4}, {100, 109}, {995, 999}} {
		part, err := mr.NextPart()
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		if cr, w := part.Header.Get("Content-Range"), fmt.Sprintf("bytes %d-%d/1000", want[0], want[1]); cr != w {
			t.Errorf("part %d: Content-Range %q, want %q", i, cr, w)
		}
		got, _ := io.ReadAll(part)
		if !bytes.Equal(got, data[want[0]:want[1]+1]) {
			t.Errorf("part %d: %q, want %q", i, got, data[want[0]:want[1]+1])
		}
	}
	if _, err := mr.NextPart(); err != io.EOF {
		t.Errorf("after the last range: %v, want io.EOF", err)
	}

	for _, rng := range []string{"bytes=1000-1010", "bytes=5000-"} {
		r := srv.Do(t, http.MethodGet, path, nil, "Range", rng)
		apitest.WantStatus(t, rng, r, http.StatusRequestedRangeNotSatisfiable)
		apitest.WantHeader(t, rng, r, "Content-Range", "bytes */1000")
	}

	// A range of a apitest.Blob the repository does not have is no way to read it.
	apitest.WantError(t, "range through another repository",
		srv.Do(t, http.MethodGet, "/v2/elsewhere/blobs/"+d.String(), nil, "Range", "bytes=0-9"),
		http.StatusNotFound, "BLOB_UNKNOWN")
}

func TestBlobMount(t *testing.T) {
	t.Parallel()
	srv := graftest.Start(t)
	data := []byte("a apitest.Blob to mount")
	d := srv.PushBlob(t, "source", data)
	srv.PushBlob(t, "without", []byte("this repository has another blob"))

	// A repository that never got the blob cannot read it.
	wantNoBlob(t, srv, "target", d)
	wantNoBlob(t, srv, "without", d)

	r := srv.Do(t, http.MethodPost, "/v2/target/blobs/uploads/?mount="+d.String()+"&from=source", nil)
	apitest.WantStatus(t, "mount from source", r, http.StatusCreated)
	apitest.WantHeader(t, "mount from source", r, "Location", "/v2/target/blobs/"+d.String())
	apitest.WantHeader(t, "mount from source", r, "Docker-Content-Digest", d.String())
	wantBlob(t, srv, "target", d, data)

	for _, from := range []string{"without", "no/such/repo"} {
		r := srv.Do(t, http.MethodPost, "/v2/fallback/blobs/uploads/?mount="+d.String()+"&from="+from, nil)
		apitest.WantStatus(t, "mount from "+from, r, http.StatusAccepted)
		loc := r.Header.Get("Location")
		if loc == "" {
			t.Fatalf("mount from %s: 202 without a Location", from)
		}
		wantNoBlob(t, srv, "fallback", d)
		// The answer is an upload session the client can use instead.
		r = srv.Do(t, http.MethodPut, apitest.WithQuery(loc, "digest", d.String()), data, "Content-Type", "application/octet-stream")
		apitest.WantStatus(t, "upload after a failed mount", r, http.StatusCreated)
		wantBlob(t, srv, "fallback", d, data)
		srv.Do(t, http.MethodDelete, "/v2/fallback/blobs/"+d.String(), nil)
	}

	// oras-go mounts without sending the content.
	desc := ocispec.Descriptor{MediaType: "application/octet-stream", Digest: d, Size: int64(len(data))}
	err := repository(t, srv, "viaoras").Mount(t.Context(), desc, "source", func() (io.ReadCloser, error) {
		return nil, errors.New("the registry did not mount: oras-go asked for the content")
	})
	if err != nil {
		t.Errorf("oras-go Mount: %v", err)
	}
	wantBlob(t, srv, "viaoras", d, data)

	// Without from, any repository that has the blob serves.
	r = srv.Do(t, http.MethodPost, "/v2/anonymous/blobs/uploads/?mount="+d.String(), nil)
	apitest.WantStatus(t, "anonymous mount", r, http.StatusCreated)
	wantBlob(t, srv, "anonymous", d, data)
	nowhere := digest.FromString("a apitest.Blob no repository has")
	r = srv.Do(t, http.MethodPost, "/v2/anonymous/blobs/uploads/?mount="+nowhere.String(), nil)
	apitest.WantStatus(t, "anonymous mount of an unknown blob", r, http.StatusAccepted)
	wantNoBlob(t, srv, "anonymous", nowhere)
}

func TestBlobDelete(t *testing.T) {
	t.Parallel()
	srv := graftest.Start(t)
	data := []byte("a apitest.Blob in two repositories")
	d := srv.PushBlob(t, "one", data)
	srv.PushBlob(t, "two", data)

	r := srv.Do(t, http.MethodDelete, "/v2/one/blobs/"+d.String(), nil)
	apitest.WantStatus(t, "DELETE blob", r, http.StatusAccepted)
	wantNoBlob(t, srv, "one", d)
	wantBlob(t, srv, "two", d, data)
	apitest.WantError(t, "DELETE again", srv.Do(t, http.MethodDelete, "/v2/one/blobs/"+d.String(), nil),
		http.StatusNotFound, "BLOB_UNKNOWN")

	// A manifest naming the deleted blob is now refused in that repository.
	m := apitest.ImageManifest(ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: d, Size: int64(len(data))}, nil, "", nil)
	apitest.WantError(t, "manifest naming a deleted blob", srv.PutManifest(t, "one", "v1", ocispec.MediaTypeImageManifest, m),
		http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN")
	apitest.WantStatus(t, "the same manifest where the blob is", srv.PutManifest(t, "two", "v1", ocispec.MediaTypeImageManifest, m),
		http.StatusCreated)
}

func TestSHA512(t *testing.T) {
	t.Parallel()
	srv := graftest.Start(t)
	sum := func(b []byte) digest.Digest { return digest.SHA512.FromBytes(b) }
	if got, want := sum([]byte("x")).Encoded(), fmt.Sprintf("%x", sha512.Sum512([]byte("x"))); got != want {
		t.Fatalf("sha512 digest %s, want %s", got, want)
	}

	config := testData("sha512 config", 300)
	layer := testData("sha512 layer", 200_000)
	cd, ld := sum(config), sum(layer)

	r := srv.Do(t, http.MethodPost, "/v2/sha512/blobs/uploads/?digest="+cd.String(), config,
		"Content-Type", "application/octet-stream")
	apitest.WantStatus(t, "monolithic sha512 upload", r, http.StatusCreated)
	apitest.WantHeader(t, "monolithic sha512 upload", r, "Docker-Content-Digest", cd.String())

	loc := srv.StartUpload(t, "sha512")
	r = srv.Do(t, http.MethodPatch, loc, layer[:100_000], "Content-Type", "application/octet-stream",
		"Content-Range", "0-99999")
	apitest.WantStatus(t, "PATCH", r, http.StatusAccepted)
	loc = r.Header.Get("Location")
	// A wrong sha512 is refused like a wrong sha256.
	r = srv.Do(t, http.MethodPut, apitest.WithQuery(loc, "digest", sum([]byte("wrong")).String()), layer[100_000:],
		"Content-Type", "application/octet-stream")
	apitest.WantError(t, "PUT with a wrong sha512", r, http.StatusBadRequest, "DIGEST_INVALID")
	loc = srv.StartUpload(t, "sha512")
	r = srv.Do(t, http.MethodPatch, loc, layer[:100_000], "Content-Type", "application/octet-stream",
		"Content-Range", "0-99999")
	apitest.WantStatus(t, "PATCH", r, http.StatusAccepted)
	r = srv.Do(t, http.MethodPut, apitest.WithQuery(r.Header.Get("Location"), "digest", ld.String()), layer[100_000:],
		"Content-Type", "application/octet-stream", "Content-Range", "100000-199999")
	apitest.WantStatus(t, "chunked sha512 upload", r, http.StatusCreated)
	apitest.WantHeader(t, "chunked sha512 upload", r, "Docker-Content-Digest", ld.String())

	wantBlob(t, srv, "sha512", cd, config)
	wantBlob(t, srv, "sha512", ld, layer)
	head := srv.Do(t, http.MethodHead, "/v2/sha512/blobs/"+ld.String(), nil)
	apitest.WantStatus(t, "HEAD sha512 blob", head, http.StatusOK)
	apitest.WantHeader(t, "HEAD sha512 blob", head, "Content-Length", strconv.Itoa(len(layer)))

	m := apitest.ImageManifest(ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: cd, Size: int64(len(config))}, []ocispec.Descriptor{ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: ld, Size: int64(len(layer))}}, "", nil)
	md := sum(m)
	r = srv.PutManifest(t, "sha512", md.String(), ocispec.MediaTypeImageManifest, m)
	apitest.WantStatus(t, "PUT manifest by sha512", r, http.StatusCreated)
	apitest.WantHeader(t, "PUT manifest by sha512", r, "Docker-Content-Digest", md.String())
	apitest.WantHeader(t, "PUT manifest by sha512", r, "Location", "/v2/sha512/manifests/"+md.String())

	get := srv.Do(t, http.MethodGet, "/v2/sha512/manifests/"+md.String(), nil, "Accept", ocispec.MediaTypeImageManifest)
	apitest.WantStatus(t, "GET manifest by sha512", get, http.StatusOK)
	if !bytes.Equal(get.Body, m) {
		t.Error("GET manifest by sha512: body differs from the pushed manifest")
	}
	apitest.WantHeader(t, "GET manifest by sha512", get, "Docker-Content-Digest", md.String())
	apitest.WantHeader(t, "GET manifest by sha512", get, "Content-Type", ocispec.MediaTypeImageManifest)

	// A referrer of the sha512 manifest is listed under its sha512 digest.
	subject := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: md, Size: int64(len(m))}
	sig := attach(t, repository(t, srv, "sha512"), subject, typeSignature, "signature of a sha512 manifest", nil)
	idx, _ := referrers(t, srv, "sha512", md, "")
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != sig.Digest {
		t.Errorf("referrers of %s: %+v, want [%s]", md, idx.Manifests, sig.Digest)
	}

	// A manifest whose bytes do not match the sha512 it is pushed as is refused.
	r = srv.PutManifest(t, "sha512", sum([]byte("other")).String(), ocispec.MediaTypeImageManifest, m)
	apitest.WantError(t, "PUT manifest by a wrong sha512", r, http.StatusBadRequest, "DIGEST_INVALID")
}

func TestDedupe(t *testing.T) {
	t.Parallel()
	srv := graftest.Start(t)
	blobs := filepath.Join(srv.DataDir, "blobs")
	a := testData("dedupe a", 64_000)
	b := testData("dedupe b", 1_000)

	srv.PushBlob(t, "first", a)
	srv.PushBlob(t, "first", b)
	if n := countFiles(t, blobs); n != 2 {
		t.Fatalf("%d files under blobs/ after two blobs, want 2", n)
	}

	// The same content again, through other repositories and other kinds of upload.
	srv.PushBlob(t, "second", a)
	loc := srv.StartUpload(t, "third")
	r := srv.Do(t, http.MethodPatch, loc, b, "Content-Type", "application/octet-stream")
	apitest.WantStatus(t, "PATCH", r, http.StatusAccepted)
	r = srv.Do(t, http.MethodPut, apitest.WithQuery(r.Header.Get("Location"), "digest", digest.FromBytes(b).String()), nil)
	apitest.WantStatus(t, "PUT", r, http.StatusCreated)
	push(t, repository(t, srv, "fourth"), apitest.NewBlob("application/octet-stream", a), apitest.NewBlob("application/octet-stream", b))

	if n := countFiles(t, blobs); n != 2 {
		t.Errorf("%d files under blobs/ after pushing the same two blobs to four repositories, want 2", n)
	}
	// Every upload is finished: none leaves bytes behind.
	if n := countFiles(t, filepath.Join(srv.DataDir, "uploads")); n != 0 {
		t.Errorf("%d files under uploads/ after every upload finished, want 0", n)
	}
	for _, repo := range []string{"first", "second", "fourth"} {
		wantBlob(t, srv, repo, digest.FromBytes(a), a)
	}
	for _, repo := range []string{"first", "third", "fourth"} {
		wantBlob(t, srv, repo, digest.FromBytes(b), b)
	}
}
