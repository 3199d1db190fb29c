package server

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// plainWriter is a ResponseWriter with nothing more: no ReadFrom, as a wrapping
// middleware's writer often has none.
type plainWriter struct{ http.ResponseWriter }

func TestStatusWriterReadFrom(t *testing.T) {
	for _, tc := range []struct {
		name string
		w    func(*httptest.ResponseRecorder) http.ResponseWriter
	}{
		{"a recorder", func(r *httptest.ResponseRecorder) http.ResponseWriter { return r }},
		{"a writer without ReadFrom", func(r *httptest.ResponseRecorder) http.ResponseWriter { return plainWriter{r} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			sw := &statusWriter{ResponseWriter: tc.w(rec)}
			body := strings.Repeat("blob bytes ", 10_000)
			n, err := sw.ReadFrom(strings.NewReader(body))
			if err != nil || n != int64(len(body)) {
				t.Fatalf("ReadFrom: %d, %v; want %d", n, err, len(body))
			}
			if sw.status != http.StatusOK || sw.written != n {
				t.Errorf("recorded status %d, %d bytes; want 200, %d", sw.status, sw.written, n)
			}
			if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), []byte(body)) {
				t.Errorf("the writer got %d and %d bytes", rec.Code, rec.Body.Len())
			}
		})
	}
}
