package httpstatus

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// plainWriter is a ResponseWriter with nothing more: no ReadFrom, as a wrapping
// middleware's writer often has none.
type plainWriter struct{ http.ResponseWriter }

// TestReadFromCopies: behind a writer without ReadFrom, ReadFrom copies, and does not
// find itself again.
func TestReadFromCopies(t *testing.T) {
	for _, tc := range []struct {
		name string
		w    func(*httptest.ResponseRecorder) http.ResponseWriter
	}{
		{"a recorder", func(r *httptest.ResponseRecorder) http.ResponseWriter { return r }},
		{"a writer without ReadFrom", func(r *httptest.ResponseRecorder) http.ResponseWriter { return plainWriter{r} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			w := &Writer{ResponseWriter: tc.w(rec)}
			body := strings.Repeat("blob bytes ", 10_000)
			n, err := w.ReadFrom(strings.NewReader(body))
			if err != nil || n != int64(len(body)) {
				t.Fatalf("ReadFrom: %d, %v; want %d", n, err, len(body))
			}
			if w.Status() != http.StatusOK || w.Written() != n {
				t.Errorf("recorded status %d, %d bytes; want 200, %d", w.Status(), w.Written(), n)
			}
			if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), []byte(body)) {
				t.Errorf("the writer got %d and %d bytes", rec.Code, rec.Body.Len())
			}
		})
	}
}

// readerFromWriter is a ResponseWriter with a ReadFrom of its own, as net/http's is
// (its ReadFrom is the sendfile path).
type readerFromWriter struct {
	*httptest.ResponseRecorder
	calls int
}

func (w *readerFromWriter) ReadFrom(r io.Reader) (int64, error) {
	w.calls++
	return io.Copy(w.ResponseRecorder, r)
}

// TestReadFromDelegates: behind a writer with ReadFrom, ReadFrom is the wrapped
// writer's, and io.CopyN (which http.ServeContent uses) finds it.
func TestReadFromDelegates(t *testing.T) {
	inner := &readerFromWriter{ResponseRecorder: httptest.NewRecorder()}
	w := &Writer{ResponseWriter: inner}
	body := strings.Repeat("blob bytes ", 10_000)
	n, err := io.CopyN(w, strings.NewReader(body), int64(len(body)))
	if err != nil || n != int64(len(body)) {
		t.Fatalf("io.CopyN: %d, %v; want %d", n, err, len(body))
	}
	if inner.calls != 1 {
		t.Errorf("the wrapped writer's ReadFrom was called %d times, want once", inner.calls)
	}
	if w.Status() != http.StatusOK || w.Written() != n {
		t.Errorf("recorded status %d, %d bytes; want 200, %d", w.Status(), w.Written(), n)
	}
	if inner.Body.String() != body {
		t.Errorf("the writer got %d bytes, want %d", inner.Body.Len(), len(body))
	}
}

// TestServeContentOfAFile: a file served through a Writer by http.ServeContent, over
// a real connection, arrives whole and is counted.
func TestServeContentOfAFile(t *testing.T) {
	body := strings.Repeat("blob bytes ", 100_000)
	path := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	recorded := make(chan *Writer, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w := &Writer{ResponseWriter: rw}
		defer func() { recorded <- w }()
		f, err := os.Open(path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		http.ServeContent(w, r, "blob", time.Time{}, f)
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(got) != body {
		t.Fatalf("got %d bytes (%v), want %d", len(got), err, len(body))
	}
	w := <-recorded
	if w.Status() != http.StatusOK || w.Written() != int64(len(body)) {
		t.Errorf("recorded status %d, %d bytes; want 200, %d", w.Status(), w.Written(), len(body))
	}
}

func TestStatus(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(*Writer)
		want  int
	}{
		{"nothing", func(*Writer) {}, 0},
		{"a body alone", func(w *Writer) { w.Write([]byte("x")) }, http.StatusOK},
		{"a status", func(w *Writer) { w.WriteHeader(http.StatusNotFound) }, http.StatusNotFound},
		{"the first of two", func(w *Writer) {
			w.WriteHeader(http.StatusCreated)
			w.WriteHeader(http.StatusInternalServerError)
		}, http.StatusCreated},
		{"after an informational header", func(w *Writer) {
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusAccepted)
		}, http.StatusAccepted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &Writer{ResponseWriter: httptest.NewRecorder()}
			tc.write(w)
			if w.Status() != tc.want {
				t.Errorf("status %d, want %d", w.Status(), tc.want)
			}
		})
	}
}

// deadlineWriter is a ResponseWriter with write deadlines, as net/http's is.
type deadlineWriter struct {
	*httptest.ResponseRecorder
	deadline time.Time
}

func (w *deadlineWriter) SetWriteDeadline(t time.Time) error {
	w.deadline = t
	return nil
}

// TestResponseController: a ResponseController reaches through a Writer to the
// writer it wraps, to flush or to set a deadline.
func TestResponseController(t *testing.T) {
	inner := &deadlineWriter{ResponseRecorder: httptest.NewRecorder()}
	w := &Writer{ResponseWriter: inner}
	rc := http.NewResponseController(w)
	if err := rc.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if !inner.Flushed {
		t.Error("the wrapped writer was not flushed")
	}
	at := time.Now().Add(time.Minute)
	if err := rc.SetWriteDeadline(at); err != nil {
		t.Fatalf("SetWriteDeadline: %v", err)
	}
	if !inner.deadline.Equal(at) {
		t.Errorf("the wrapped writer's deadline is %v, want %v", inner.deadline, at)
	}
}
