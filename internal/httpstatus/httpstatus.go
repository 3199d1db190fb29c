// Package httpstatus records what a handler answered: the status and the size of the
// body. The server's metrics and the access log both need it.
package httpstatus

import (
	"io"
	"net/http"
)

// Writer wraps an http.ResponseWriter and records the status and the number of body
// bytes written through it. It passes ReadFrom through when the writer it wraps has
// one, so that net/http's own copy path (sendfile, for http.ServeContent on an
// *os.File) still serves blobs; behind a writer without one (a wrapping middleware,
// httptest.ResponseRecorder) it copies. Unwrap lets an http.ResponseController reach
// the wrapped writer.
//
// The zero Writer is not ready: set ResponseWriter, as in &Writer{ResponseWriter: w}.
type Writer struct {
	http.ResponseWriter
	status  int
	written int64
}

// Status is the final status written, 0 before any: a handler that writes a body
// without a status answers 200, and informational (1xx) headers are not final.
func (w *Writer) Status() int { return w.status }

// Written is the number of body bytes written.
func (w *Writer) Written() int64 { return w.written }

func (w *Writer) WriteHeader(status int) {
	if w.status == 0 && status >= 200 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *Writer) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.written += int64(n)
	return n, err
}

func (w *Writer) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	var (
		n   int64
		err error
	)
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		// io.Copy would find this ReadFrom again on w; on the wrapped writer it
		// finds none.
		n, err = io.Copy(w.ResponseWriter, r)
	}
	w.written += n
	return n, err
}

// Flush passes a flush through, for answers streamed as they are made.
func (w *Writer) Flush() { w.FlushError() }

// FlushError is Flush with the wrapped writer's error, which is what an
// http.ResponseController's Flush returns.
func (w *Writer) FlushError() error {
	return http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *Writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }
