// Package accesslog writes one line per HTTP request: who asked what, what they got,
// and how long it took. It wraps the whole of graft serve's handler (the API and the
// web view alike); the handlers inside tell it who the caller turned out to be.
package accesslog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/graft-registry/graft/internal/httpstatus"
)

// RequestIDHeader carries the id of a request in its answer, as the log line has it.
const RequestIDHeader = "X-Request-Id"

// Options configure Handler.
type Options struct {
	Logger *slog.Logger
	// ClientAddr is the address a request comes from (behind trusted proxies, the
	// client they name); nil is the connection's peer.
	ClientAddr func(*http.Request) string
	// Quiet reports the requests logged at debug rather than info: probes that
	// arrive every few seconds.
	Quiet func(*http.Request) bool
	// Off logs nothing, but still gives each request its id.
	Off bool
}

// entry is what the handlers inside learn of a request and the line needs.
type entry struct {
	id   string
	user string
}

type entryKey struct{}

// SetUser records who made the request in ctx (a user or token name), for its line.
func SetUser(ctx context.Context, name string) {
	if e, ok := ctx.Value(entryKey{}).(*entry); ok {
		e.user = name
	}
}

// RequestID is the id Handler gave the request of ctx, or "".
func RequestID(ctx context.Context) string {
	if e, ok := ctx.Value(entryKey{}).(*entry); ok {
		return e.id
	}
	return ""
}

// Handler logs each request next serves, once it is answered: at info, or at debug
// for the quiet ones.
func Handler(next http.Handler, o Options) http.Handler {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	clientAddr := o.ClientAddr
	if clientAddr == nil {
		clientAddr = func(r *http.Request) string { return r.RemoteAddr }
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		e := &entry{id: newID()}
		w.Header().Set(RequestIDHeader, e.id)
		r = r.WithContext(context.WithValue(r.Context(), entryKey{}, e))
		if o.Off {
			next.ServeHTTP(w, r)
			return
		}
		level := slog.LevelInfo
		if o.Quiet != nil && o.Quiet(r) {
			level = slog.LevelDebug
		}
		if !log.Enabled(r.Context(), level) {
			next.ServeHTTP(w, r)
			return
		}
		var body *countingBody
		if r.Body != nil && r.Body != http.NoBody {
			body = &countingBody{ReadCloser: r.Body}
			r.Body = body
		}
		rw := &httpstatus.Writer{ResponseWriter: w}
		defer func() {
			// A handler that panics is answered by net/http (or the server's own
			// recovery): the line is written either way.
			status := rw.Status()
			if status == 0 {
				status = http.StatusOK
			}
			var in int64
			if body != nil {
				in = body.n
			}
			log.LogAttrs(context.WithoutCancel(r.Context()), level, "request",
				slog.String("remote", clientAddr(r)),
				slog.String("user", e.user),
				slog.String("method", r.Method),
				slog.String("path", r.URL.RequestURI()),
				slog.Int("status", status),
				slog.Int64("bytes_in", in),
				slog.Int64("bytes_out", rw.Written()),
				slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
				slog.String("user_agent", r.UserAgent()),
				slog.String("request_id", e.id),
			)
		}()
		next.ServeHTTP(rw, r)
	})
}

// newID is a request id: 16 random hex digits, enough to tell apart the requests of
// any log.
func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// countingBody counts the bytes a handler read of a request body.
type countingBody struct {
	io.ReadCloser
	n int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}
