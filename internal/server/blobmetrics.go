package server

import (
	"io"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/graft-registry/graft/internal/httpstatus"
)

// graft_blob_bytes_total counts the bytes of blobs through the API: the bodies of
// uploads as they are read (in), and the answers of blob pulls that succeed (out).
// Pulls redirected to the blob store send no bytes through graft.

func newBlobBytes() *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "graft_blob_bytes_total",
		Help: "Bytes of blobs received in uploads (in) and sent in pulls (out); pulls redirected to the blob store are not counted.",
	}, []string{"direction"})
	v.WithLabelValues("in")
	v.WithLabelValues("out")
	return v
}

// blobBytesOf starts counting the blob bytes of request r, of route rt: it wraps an
// upload's body. The function it returns adds them up once the answer is written.
func (m *metrics) blobBytesOf(rt route, r *http.Request) func(*httpstatus.Writer) {
	var in *countingReader
	if (rt.kind == routeUploads || rt.kind == routeUpload) && r.Body != nil && r.Body != http.NoBody {
		in = &countingReader{ReadCloser: r.Body}
		r.Body = in
	}
	pull := rt.kind == routeBlob && r.Method == http.MethodGet
	return func(sw *httpstatus.Writer) {
		if in != nil {
			m.blobBytes.WithLabelValues("in").Add(float64(in.n))
		}
		if pull && sw.Status()/100 == 2 {
			m.blobBytes.WithLabelValues("out").Add(float64(sw.Written()))
		}
	}
}

// countingReader counts the bytes read of a request body.
type countingReader struct {
	io.ReadCloser
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n += int64(n)
	return n, err
}
