package server_test

import (
	"bytes"
	_ "crypto/sha512"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/apitest"
	"github.com/graft-registry/graft/internal/config"
	"github.com/graft-registry/graft/internal/registrytest"
	"github.com/graft-registry/graft/internal/server"
)

const octets = "application/octet-stream"

// uploadID is the session ID a Location of an upload names, checked to be one.
func uploadID(t *testing.T, repo, loc string) string {
	t.Helper()
	id, ok := strings.CutPrefix(loc, "/v2/"+repo+"/blobs/uploads/")
	if !ok || id == "" || strings.Contains(id, "/") {
		t.Fatalf("Location %q is no upload session of %s", loc, repo)
	}
	return id
}

// sessionHeaders are the headers of an answer about session loc holding size bytes.
func sessionHeaders(t *testing.T, repo, loc string, size int64) map[string]string {
	return map[string]string{
		"Location":           loc,
		"Docker-Upload-UUID": uploadID(t, repo, loc),
		"Range":              apitest.UploadRange(size),
	}
}

func TestMonolithicUpload(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		data := []byte("a blob uploaded in one request")
		d := digest.FromBytes(data)
		wrong := digest.FromString("other bytes")
		post := "/v2/up/mono/blobs/uploads/?digest="
		run(t, srv, []call{
			{name: "wrong digest", method: http.MethodPost, target: post + wrong.String(), body: data,
				status: http.StatusBadRequest, code: "DIGEST_INVALID",
				message: "the uploaded content does not match digest " + wrong.String()},
			{name: "malformed digest", method: http.MethodPost, target: post + "sha256:abc", body: data,
				status: http.StatusBadRequest, code: "DIGEST_INVALID", message: `invalid digest "sha256:abc"`},
			{name: "Content-Range and Content-Length disagree", method: http.MethodPost, target: post + d.String(), body: data,
				header: []string{"Content-Range", "0-3"}, status: http.StatusRequestedRangeNotSatisfiable,
				code: "BLOB_UPLOAD_INVALID", message: "Content-Range and Content-Length disagree"},
			{name: "body shorter than its Content-Range", method: http.MethodPost, target: post + d.String(), body: data[:5],
				stream: true, header: []string{"Content-Range", "0-9"}, status: http.StatusBadRequest,
				code: "SIZE_INVALID", message: "the chunk does not hold the 10 bytes declared; nothing of it was kept"},
			{name: "invalid name", method: http.MethodPost, target: "/v2/Up/blobs/uploads/?digest=" + d.String(), body: data,
				status: http.StatusBadRequest, code: "NAME_INVALID", message: "invalid repository name"},
		})
		wantNoBlob(t, srv, "up/mono", d)
		wantNoBlob(t, srv, "up/mono", wrong)

		call{method: http.MethodPost, target: post + d.String(), body: data, header: []string{"Content-Type", octets},
			status: http.StatusCreated, answer: []byte{}, headers: map[string]string{
				"Location":              "/v2/up/mono/blobs/" + d.String(),
				"Docker-Content-Digest": d.String(),
				"Content-Length":        "0",
				"Range":                 "",
				"Docker-Upload-UUID":    "",
			}}.check(t, srv)
		wantBlob(t, srv, "up/mono", data)
		// The same blob again is taken again.
		srv.PushBlob(t, "up/mono", data)

		// A blob is readable only where it was pushed.
		wantNoBlob(t, srv, "up/elsewhere", d)

		// Streamed, with no length: the registry reads to the end.
		streamed := repeat("streamed ", 100_000)
		r := srv.DoStream(t, http.MethodPost, post+digest.FromBytes(streamed).String(), bytes.NewReader(streamed))
		apitest.WantStatus(t, "streamed monolithic upload", r, http.StatusCreated)
		wantBlob(t, srv, "up/mono", streamed)

		// The empty blob.
		srv.PushBlob(t, "up/empty", nil)
		wantBlob(t, srv, "up/empty", []byte{})
	})
}

func TestChunkedUpload(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		const repo = "up/chunked"
		data := repeat("0123456789", 500)
		d := digest.FromBytes(data)

		r := srv.Do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil)
		apitest.WantStatus(t, "POST", r, http.StatusAccepted)
		loc := r.Header.Get("Location")
		for k, v := range sessionHeaders(t, repo, loc, 0) {
			apitest.WantHeader(t, "POST", r, k, v)
		}
		apitest.WantHeader(t, "POST", r, "Content-Length", "0")
		state := func(size int64) map[string]string { return sessionHeaders(t, repo, loc, size) }
		chunk := func(start, end int) []string {
			return []string{"Content-Range", strconv.Itoa(start) + "-" + strconv.Itoa(end-1)}
		}
		refused := func(name, method, target string, body []byte, header []string, status int, code, msg string) call {
			return call{name: name, method: method, target: target, body: body, header: header,
				status: status, code: code, message: msg, headers: state(100)}
		}
		withDigest := apitest.WithQuery(loc, "digest", d.String())

		run(t, srv, []call{
			{name: "first chunk", method: http.MethodPatch, target: loc, body: data[:100], header: chunk(0, 100),
				status: http.StatusAccepted, headers: state(100), answer: []byte{}},
			{name: "status", method: http.MethodGet, target: loc, status: http.StatusNoContent, headers: state(100), answer: []byte{}},
			{name: "status by HEAD", method: http.MethodHead, target: loc, status: http.StatusNoContent, headers: state(100)},

			// Refused chunks say where the upload stands, and change nothing.
			refused("chunk out of order", http.MethodPatch, loc, data[150:200], chunk(150, 200),
				http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID", "chunk starts at 150, the upload holds 100 bytes"),
			refused("chunk again from zero", http.MethodPatch, loc, data[:100], chunk(0, 100),
				http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID", "chunk starts at 0, the upload holds 100 bytes"),
			refused("malformed Content-Range", http.MethodPatch, loc, data[100:150], []string{"Content-Range", "abc"},
				http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID", "malformed Content-Range"),
			refused("Content-Range without an end", http.MethodPatch, loc, data[100:150], []string{"Content-Range", "100-"},
				http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID", "malformed Content-Range"),
			refused("Content-Range that ends before it starts", http.MethodPatch, loc, data[100:150], []string{"Content-Range", "149-100"},
				http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID", "malformed Content-Range"),
			refused("Content-Range disagrees with Content-Length", http.MethodPatch, loc, data[100:150], chunk(100, 200),
				http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID", "Content-Range and Content-Length disagree"),
			refused("last chunk out of order", http.MethodPut, withDigest, data[150:], chunk(150, 500),
				http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID", "chunk starts at 150, the upload holds 100 bytes"),
			{name: "chunk shorter than its Content-Range", method: http.MethodPatch, target: loc, body: data[100:150],
				stream: true, header: chunk(100, 200), status: http.StatusBadRequest, code: "SIZE_INVALID",
				message: "the chunk does not hold the 100 bytes declared; nothing of it was kept"},
			{name: "chunk longer than its Content-Range", method: http.MethodPatch, target: loc, body: data[100:300],
				stream: true, header: chunk(100, 200), status: http.StatusBadRequest, code: "SIZE_INVALID",
				message: "the chunk does not hold the 100 bytes declared; nothing of it was kept"},
			{name: "PUT without a digest", method: http.MethodPut, target: loc, status: http.StatusBadRequest,
				code: "DIGEST_INVALID", message: "the digest query parameter is required"},
			{name: "PUT with an empty digest", method: http.MethodPut, target: loc + "?digest=", status: http.StatusBadRequest,
				code: "DIGEST_INVALID", message: "the digest query parameter is required"},
			{name: "PUT with a malformed digest", method: http.MethodPut, target: apitest.WithQuery(loc, "digest", "sha256:abc"),
				status: http.StatusBadRequest, code: "DIGEST_INVALID", message: `invalid digest "sha256:abc"`},
			{name: "status after the refusals", method: http.MethodGet, target: loc, status: http.StatusNoContent, headers: state(100)},

			// A chunk without Content-Range goes at the end.
			{name: "chunk without Content-Range", method: http.MethodPatch, target: loc, body: data[100:300],
				status: http.StatusAccepted, headers: state(300)},
			{name: "streamed chunk", method: http.MethodPatch, target: loc, body: data[300:400], stream: true,
				status: http.StatusAccepted, headers: state(400)},
			{name: "last chunk in the PUT", method: http.MethodPut, target: withDigest, body: data[400:], header: chunk(400, 500),
				status: http.StatusCreated, answer: []byte{}, headers: map[string]string{
					"Location": "/v2/" + repo + "/blobs/" + d.String(), "Docker-Content-Digest": d.String(),
					"Content-Length": "0", "Docker-Upload-UUID": "", "Range": "",
				}},
			// The session is over.
			{name: "status of the finished session", method: http.MethodGet, target: loc, status: http.StatusNotFound,
				code: "BLOB_UPLOAD_UNKNOWN", message: "upload session unknown"},
			{name: "PUT again", method: http.MethodPut, target: withDigest, status: http.StatusNotFound, code: "BLOB_UPLOAD_UNKNOWN"},
		})
		wantBlob(t, srv, repo, data)

		// Finished with an empty PUT, and the empty blob from an empty session.
		loc = srv.StartUpload(t, repo)
		srv.Want(t, http.StatusAccepted, http.MethodPatch, loc, []byte("whole"))
		srv.Want(t, http.StatusCreated, http.MethodPut, apitest.WithQuery(loc, "digest", digest.FromString("whole").String()), nil)
		wantBlob(t, srv, repo, []byte("whole"))
		loc = srv.StartUpload(t, repo)
		srv.Want(t, http.StatusCreated, http.MethodPut, apitest.WithQuery(loc, "digest", digest.FromBytes(nil).String()), nil)
		wantBlob(t, srv, repo, []byte{})
	})
}

func TestUploadDigestMismatch(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		const repo = "up/mismatch"
		data := []byte("the bytes sent")
		for _, tc := range []struct {
			name string
			alg  digest.Algorithm
		}{{"sha256", digest.SHA256}, {"sha512", digest.SHA512}} {
			t.Run(tc.name, func(t *testing.T) {
				wrong := tc.alg.FromString("other bytes")
				loc := srv.StartUpload(t, repo)
				srv.Want(t, http.StatusAccepted, http.MethodPatch, loc, data)
				call{method: http.MethodPut, target: apitest.WithQuery(loc, "digest", wrong.String()), status: http.StatusBadRequest,
					code: "DIGEST_INVALID", message: "the uploaded content does not match digest " + wrong.String()}.check(t, srv)
				// The content is discarded with the session.
				call{method: http.MethodGet, target: loc, status: http.StatusNotFound, code: "BLOB_UPLOAD_UNKNOWN"}.check(t, srv)
				wantNoBlob(t, srv, repo, wrong)
				wantNoBlob(t, srv, repo, tc.alg.FromBytes(data))
			})
		}
	})
}

func TestSHA512Blobs(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		const repo = "up/sha512"
		small := []byte("a small sha512 blob")
		d := digest.SHA512.FromBytes(small)
		call{method: http.MethodPost, target: "/v2/" + repo + "/blobs/uploads/?digest=" + d.String(), body: small,
			status: http.StatusCreated, headers: map[string]string{
				"Location": "/v2/" + repo + "/blobs/" + d.String(), "Docker-Content-Digest": d.String(),
			}}.check(t, srv)

		big := repeat("sha512 chunk ", 300_000)
		bd := digest.SHA512.FromBytes(big)
		loc := srv.StartUpload(t, repo)
		srv.Want(t, http.StatusAccepted, http.MethodPatch, loc, big[:100_000], "Content-Range", "0-99999")
		call{method: http.MethodPut, target: apitest.WithQuery(loc, "digest", bd.String()), body: big[100_000:],
			status: http.StatusCreated, headers: map[string]string{"Docker-Content-Digest": bd.String()}}.check(t, srv)

		for _, b := range []struct {
			d    digest.Digest
			data []byte
		}{{d, small}, {bd, big}} {
			path := "/v2/" + repo + "/blobs/" + b.d.String()
			call{method: http.MethodGet, target: path, status: http.StatusOK, answer: b.data,
				headers: map[string]string{"Docker-Content-Digest": b.d.String(), "Etag": `"` + b.d.String() + `"`}}.check(t, srv)
			call{method: http.MethodHead, target: path, status: http.StatusOK,
				headers: map[string]string{"Content-Length": strconv.Itoa(len(b.data)), "Docker-Content-Digest": b.d.String()}}.check(t, srv)
		}
		// sha256 names the same bytes elsewhere; only the digest pushed is known.
		wantNoBlob(t, srv, repo, digest.FromBytes(small))
	})
}

func TestUploadCancel(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		const repo = "up/cancel"
		loc := srv.StartUpload(t, repo)
		srv.Want(t, http.StatusAccepted, http.MethodPatch, loc, []byte("0123456789"))
		d := digest.FromString("0123456789")
		unknown := func(method, target string, body []byte) call {
			return call{name: method + " after the cancel", method: method, target: target, body: body,
				status: http.StatusNotFound, code: "BLOB_UPLOAD_UNKNOWN", message: "upload session unknown"}
		}
		run(t, srv, []call{
			{name: "cancel", method: http.MethodDelete, target: loc, status: http.StatusNoContent, answer: []byte{}},
			unknown(http.MethodGet, loc, nil),
			unknown(http.MethodPatch, loc, []byte("more")),
			unknown(http.MethodPut, apitest.WithQuery(loc, "digest", d.String()), nil),
			unknown(http.MethodDelete, loc, nil),
		})
		wantNoBlob(t, srv, repo, d)
	})
}

func TestUploadSessionOfAnotherRepository(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		loc := srv.StartUpload(t, "up/a")
		id := uploadID(t, "up/a", loc)
		srv.PushBlob(t, "up/b", []byte("up/b exists")) // and still does not know a's session
		data := []byte("a blob of up/a")
		d := digest.FromBytes(data)
		viaB := "/v2/up/b/blobs/uploads/" + id
		var calls []call
		for _, c := range []struct {
			method, target string
			body           []byte
		}{
			{http.MethodGet, viaB, nil},
			{http.MethodHead, viaB, nil},
			{http.MethodPatch, viaB, data},
			{http.MethodPut, apitest.WithQuery(viaB, "digest", d.String()), data},
			{http.MethodDelete, viaB, nil},
			// and sessions that are nowhere
			{http.MethodGet, "/v2/up/a/blobs/uploads/" + strings.Repeat("0", len(id)), nil},
			{http.MethodGet, "/v2/up/a/blobs/uploads/" + strings.ToUpper(id), nil},
			{http.MethodGet, "/v2/up/a/blobs/uploads/..", nil},
			{http.MethodPatch, "/v2/up/a/blobs/uploads/" + id + "x", data},
		} {
			calls = append(calls, call{method: c.method, target: c.target, body: c.body,
				status: http.StatusNotFound, code: "BLOB_UPLOAD_UNKNOWN"})
		}
		run(t, srv, calls)
		// Nothing reached the session: it is empty, and works in up/a.
		call{method: http.MethodGet, target: loc, status: http.StatusNoContent, headers: map[string]string{"Range": "0-0"}}.check(t, srv)
		srv.Want(t, http.StatusCreated, http.MethodPut, apitest.WithQuery(loc, "digest", d.String()), data)
		wantBlob(t, srv, "up/a", data)
		wantNoBlob(t, srv, "up/b", d)
	})
}

func TestBlobMount(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		data := []byte("a blob to mount")
		d := srv.PushBlob(t, "mount/source", data)
		srv.PushBlob(t, "mount/without", []byte("another blob"))
		nowhere := digest.FromString("a blob no repository has")
		mount := func(to, query string) string { return "/v2/" + to + "/blobs/uploads/?" + query }
		created := func(repo string) map[string]string {
			return map[string]string{"Location": "/v2/" + repo + "/blobs/" + d.String(), "Docker-Content-Digest": d.String(),
				"Content-Length": "0", "Docker-Upload-UUID": ""}
		}
		run(t, srv, []call{
			{name: "from a repository that has it", method: http.MethodPost, target: mount("mount/target", "mount="+d.String()+"&from=mount/source"),
				status: http.StatusCreated, headers: created("mount/target"), answer: []byte{}},
			{name: "without from", method: http.MethodPost, target: mount("mount/anywhere", "mount="+d.String()),
				status: http.StatusCreated, headers: created("mount/anywhere")},
			{name: "from a repository that does not have it", method: http.MethodPost, target: mount("mount/fallback", "mount="+d.String()+"&from=mount/without"),
				status: http.StatusAccepted, headers: map[string]string{"Range": "0-0", "Docker-Content-Digest": ""}},
			{name: "from an unknown repository", method: http.MethodPost, target: mount("mount/fallback", "mount="+d.String()+"&from=mount/nothing"),
				status: http.StatusAccepted, headers: map[string]string{"Range": "0-0"}},
			{name: "from an invalid name", method: http.MethodPost, target: mount("mount/fallback", "mount="+d.String()+"&from=..%2Fmount%2Fsource"),
				status: http.StatusAccepted, headers: map[string]string{"Range": "0-0"}},
			{name: "of a blob no repository has", method: http.MethodPost, target: mount("mount/fallback", "mount="+nowhere.String()),
				status: http.StatusAccepted, headers: map[string]string{"Range": "0-0"}},
			{name: "of a malformed digest", method: http.MethodPost, target: mount("mount/fallback", "mount=sha256:abc&from=mount/source"),
				status: http.StatusBadRequest, code: "DIGEST_INVALID", message: `invalid digest "sha256:abc"`},
		})
		wantBlob(t, srv, "mount/target", data)
		wantBlob(t, srv, "mount/anywhere", data)
		wantNoBlob(t, srv, "mount/fallback", d)

		// The session a failed mount opens takes the blob instead.
		r := srv.Want(t, http.StatusAccepted, http.MethodPost, mount("mount/fallback", "mount="+d.String()+"&from=mount/without"), nil)
		loc := r.Header.Get("Location")
		uploadID(t, "mount/fallback", loc)
		srv.Want(t, http.StatusCreated, http.MethodPut, apitest.WithQuery(loc, "digest", d.String()), data)
		wantBlob(t, srv, "mount/fallback", data)
	})
}

func TestBlobReads(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		data := repeat("ranges", 1000)
		d := srv.PushBlob(t, "read/blob", data)
		path := "/v2/read/blob/blobs/" + d.String()
		ranged := func(rng string, start, end int) call {
			return call{name: rng, method: http.MethodGet, target: path, header: []string{"Range", rng},
				status: http.StatusPartialContent, answer: data[start : end+1], headers: map[string]string{
					"Content-Range": "bytes " + strconv.Itoa(start) + "-" + strconv.Itoa(end) + "/1000", "Docker-Content-Digest": d.String(),
				}}
		}
		unsatisfiable := func(rng string) call {
			return call{name: rng, method: http.MethodGet, target: path, header: []string{"Range", rng},
				status: http.StatusRequestedRangeNotSatisfiable, headers: map[string]string{"Content-Range": "bytes */1000"}}
		}
		run(t, srv, []call{
			ranged("bytes=0-0", 0, 0),
			ranged("bytes=10-19", 10, 19),
			ranged("bytes=990-", 990, 999),
			ranged("bytes=-5", 995, 999),
			ranged("bytes=500-5000", 500, 999),
			unsatisfiable("bytes=1000-1010"),
			unsatisfiable("bytes=5000-"),
			{name: "If-None-Match", method: http.MethodGet, target: path, header: []string{"If-None-Match", `"` + d.String() + `"`},
				status: http.StatusNotModified, answer: []byte{}},
			{name: "a range through another repository", method: http.MethodGet, target: "/v2/read/other/blobs/" + d.String(),
				header: []string{"Range", "bytes=0-9"}, status: http.StatusNotFound, code: "BLOB_UNKNOWN"},
			{name: "a malformed digest", method: http.MethodGet, target: "/v2/read/blob/blobs/sha256:abc",
				status: http.StatusBadRequest, code: "DIGEST_INVALID", message: `invalid digest "sha256:abc"`},
			{name: "a malformed digest, HEAD", method: http.MethodHead, target: "/v2/read/blob/blobs/sha256:abc",
				status: http.StatusBadRequest, code: "DIGEST_INVALID", answer: []byte{}},
			{name: "an invalid name", method: http.MethodGet, target: "/v2/read/Blob/blobs/" + d.String(),
				status: http.StatusBadRequest, code: "NAME_INVALID"},
			{name: "an invalid name, HEAD", method: http.MethodHead, target: "/v2/read/Blob/blobs/" + d.String(),
				status: http.StatusBadRequest, code: "NAME_INVALID"},
		})

		// A manifest is a blob of its repository too.
		im := apitest.NewImage(t, linuxAMD64, "a layer")
		srv.PushImage(t, "read/blob", "v1", im)
		call{name: "a manifest as a blob", method: http.MethodGet, target: "/v2/read/blob/blobs/" + im.Desc().Digest.String(),
			status: http.StatusOK, answer: im.Manifest.Data, headers: map[string]string{
				"Docker-Content-Digest": im.Desc().Digest.String(), "Content-Length": strconv.Itoa(len(im.Manifest.Data)),
			}}.check(t, srv)
		call{name: "a manifest as a blob, HEAD", method: http.MethodHead, target: "/v2/read/blob/blobs/" + im.Desc().Digest.String(),
			status: http.StatusOK, headers: map[string]string{"Content-Length": strconv.Itoa(len(im.Manifest.Data))}}.check(t, srv)
	})
}

func TestBlobDelete(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		data := []byte("a blob in two repositories")
		d := srv.PushBlob(t, "del/one", data)
		srv.PushBlob(t, "del/two", data)
		path := "/v2/del/one/blobs/" + d.String()
		run(t, srv, []call{
			{name: "delete", method: http.MethodDelete, target: path, status: http.StatusAccepted, answer: []byte{},
				headers: map[string]string{"Content-Length": "0"}},
			{name: "delete again", method: http.MethodDelete, target: path, status: http.StatusNotFound,
				code: "BLOB_UNKNOWN", message: "blob " + d.String() + " is not in the repository"},
			{name: "delete a malformed digest", method: http.MethodDelete, target: "/v2/del/one/blobs/sha256:abc",
				status: http.StatusBadRequest, code: "DIGEST_INVALID"},
			{name: "delete with an invalid name", method: http.MethodDelete, target: "/v2/del/One/blobs/" + d.String(),
				status: http.StatusBadRequest, code: "NAME_INVALID"},
		})
		wantNoBlob(t, srv, "del/one", d)
		wantBlob(t, srv, "del/two", data)

		// A manifest naming the deleted blob is refused where it was deleted.
		config := apitest.NewBlob("application/vnd.oci.image.config.v1+json", data)
		m := apitest.ImageManifest(config.Desc, nil, "", nil)
		call{method: http.MethodPut, target: "/v2/del/one/manifests/v1", body: m, header: []string{"Content-Type", "application/vnd.oci.image.manifest.v1+json"},
			status: http.StatusBadRequest, code: "MANIFEST_BLOB_UNKNOWN"}.check(t, srv)
		call{method: http.MethodPut, target: "/v2/del/two/manifests/v1", body: m, header: []string{"Content-Type", "application/vnd.oci.image.manifest.v1+json"},
			status: http.StatusCreated}.check(t, srv)
	})
}

// TestExpireUploads: sessions nobody wrote to for the upload TTL are reclaimed, with
// their bytes; younger ones stay.
func TestExpireUploads(t *testing.T) {
	t.Parallel()
	t.Run("younger than the TTL", func(t *testing.T) {
		t.Parallel()
		registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
			loc := srv.StartUpload(t, "up/expire")
			srv.Want(t, http.StatusAccepted, http.MethodPatch, loc, []byte("in progress"))
			if n, err := srv.Registry.ExpireUploads(t.Context()); err != nil || n != 0 {
				t.Fatalf("ExpireUploads: %d, %v; want 0 reclaimed", n, err)
			}
			call{method: http.MethodGet, target: loc, status: http.StatusNoContent, headers: map[string]string{"Range": "0-10"}}.check(t, srv)
		})
	})
	t.Run("older than the TTL", func(t *testing.T) {
		t.Parallel()
		registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
			var locs []string
			for range 2 {
				loc := srv.StartUpload(t, "up/expire")
				srv.Want(t, http.StatusAccepted, http.MethodPatch, loc, []byte("abandoned"))
				locs = append(locs, loc)
			}
			if n, err := srv.Registry.ExpireUploads(t.Context()); err != nil || n != 2 {
				t.Fatalf("ExpireUploads: %d, %v; want 2 reclaimed", n, err)
			}
			for _, loc := range locs {
				call{method: http.MethodGet, target: loc, status: http.StatusNotFound, code: "BLOB_UPLOAD_UNKNOWN"}.check(t, srv)
			}
			if n, err := srv.Registry.ExpireUploads(t.Context()); err != nil || n != 0 {
				t.Fatalf("ExpireUploads again: %d, %v; want 0 reclaimed", n, err)
			}
		}, func(c *config.Config) { c.Uploads.TTL = time.Nanosecond })
	})
}

// TestUploadSessionCaps: past the upload sessions a repository or a caller may hold
// open, a new one is answered 429 TOOMANYREQUESTS with the spec's error body; a
// monolithic upload and a mount open no session and go on, and a cancelled session
// makes room.
func TestUploadSessionCaps(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		full := call{method: http.MethodPost, target: "/v2/up/caps/blobs/uploads/", status: http.StatusTooManyRequests, code: "TOOMANYREQUESTS",
			message: "repository up/caps has 2 upload sessions open, the most it may; finish or cancel one, or wait until unused ones are reclaimed"}
		mine := call{method: http.MethodPost, target: "/v2/up/caps-other/blobs/uploads/", status: http.StatusTooManyRequests, code: "TOOMANYREQUESTS",
			message: "you have 3 upload sessions open, the most one caller may; finish or cancel one, or wait until unused ones are reclaimed"}
		first := srv.StartUpload(t, "up/caps")
		srv.StartUpload(t, "up/caps")
		full.check(t, srv)
		srv.StartUpload(t, "up/caps-other")
		mine.check(t, srv)
		// No session, no count.
		blob := []byte("a monolithic upload past the caps")
		srv.Want(t, http.StatusCreated, http.MethodPost, "/v2/up/caps/blobs/uploads/?digest="+digest.FromBytes(blob).String(), blob)
		srv.Want(t, http.StatusCreated, http.MethodPost, "/v2/up/caps-other/blobs/uploads/?mount="+digest.FromBytes(blob).String()+"&from=up/caps", nil)

		srv.Want(t, http.StatusNoContent, http.MethodDelete, first, nil)
		srv.StartUpload(t, "up/caps")
		full.check(t, srv)
		mine.check(t, srv)
	}, func(c *config.Config) { c.Limits.UploadsPerRepository, c.Limits.UploadsPerCaller = 2, 3 })
}

// TestBlobBehindARecorder: the server serves blobs to a ResponseWriter that is not
// net/http's, as a middleware or httptest.ResponseRecorder gives it.
func TestBlobBehindARecorder(t *testing.T) {
	t.Parallel()
	srv := registrytest.Start(t, registrytest.SQLite)
	data := repeat("recorded ", 100_000)
	d := srv.PushBlob(t, "rec/app", data)
	h := server.New(srv.Registry, server.Options{})
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, "/v2/rec/app/blobs/"+d.String(), nil))
		want := data
		if method == http.MethodHead {
			want = nil
		}
		if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), want) || rec.Header().Get("Content-Length") != strconv.Itoa(len(data)) {
			t.Errorf("%s: %d, %d bytes, Content-Length %q; want 200 and the blob", method, rec.Code, rec.Body.Len(), rec.Header().Get("Content-Length"))
		}
	}
}
