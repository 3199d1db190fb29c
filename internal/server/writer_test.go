package server

import (
	"bytes"
	"log/slog"
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

// TestWriteJSONLogsToTheServer: an answer that cannot be encoded is a 500 logged
// where the server logs, not to the process's default logger.
func TestWriteJSONLogsToTheServer(t *testing.T) {
	var logged bytes.Buffer
	s := &Server{log: slog.New(slog.NewJSONHandler(&logged, nil))}
	var global bytes.Buffer
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(slog.New(slog.NewJSONHandler(&global, nil)))

	rec := httptest.NewRecorder()
	s.writeJSON(rec, httptest.NewRequest(http.MethodGet, "/v2/x/tags/list", nil), http.StatusOK, "application/json", make(chan int))
	if rec.Code != http.StatusInternalServerError || rec.Body.Len() != 0 {
		t.Errorf("answered %d with %q, want 500 and no body", rec.Code, rec.Body)
	}
	if !strings.Contains(logged.String(), `"msg":"encoding an answer","method":"GET","path":"/v2/x/tags/list"`) {
		t.Errorf("the server's log has %q", logged.String())
	}
	if global.Len() != 0 {
		t.Errorf("the default logger got %q", global.String())
	}
}
