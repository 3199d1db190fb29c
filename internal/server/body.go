package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/graft-registry/graft/internal/errcode"
)

// Request bodies are guarded against clients that hold a connection by sending
// slowly: a body must deliver Limits.BodyMinBytes in every Limits.BodyWindow (a read
// deadline that moves on with progress), and one the server answers without reading
// (a refused login, a chunk out of order) is not read afterwards either: net/http
// would read up to 256 KiB of it before taking the connection back, at whatever pace
// the client sends.

// Limits bound what requests may hold of a server.
type Limits struct {
	// BodyMinBytes must arrive in every BodyWindow of a request body, or the request
	// is cut off (408) and its connection closed. A zero BodyWindow turns this off.
	BodyMinBytes int64
	BodyWindow   time.Duration
	// ManifestMemory bounds the bytes of manifest bodies held at once, across all
	// requests; 0 is DefaultManifestMemory.
	ManifestMemory int64
}

// Defaults of the configuration's limits.
const (
	DefaultBodyMinBytes   = 16 << 10
	DefaultBodyWindow     = 30 * time.Second
	DefaultManifestMemory = 64 << 20
)

// bodyLinger is how long an unread body may go on arriving after its answer, so that
// a client that sends the whole request before it reads gets the answer rather than
// a reset: the connection is closed then.
const bodyLinger = time.Second

type guardKey struct{}

// guardedBody is a request body under a minimum rate.
type guardedBody struct {
	body   io.ReadCloser
	rc     *http.ResponseController // nil when the connection has no deadlines
	http1  bool
	min    int64
	window time.Duration

	reading bool  // the handler has begun reading
	credit  int64 // bytes since the deadline last moved
	eof     bool
	cut     bool // the deadline passed while the handler read
}

// guardBody puts r's body, if it has one, under the minimum rate of l. w is the
// connection's own ResponseWriter: its deadlines are the ones moved.
func guardBody(l Limits, w http.ResponseWriter, r *http.Request) *http.Request {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return r
	}
	g := &guardedBody{body: r.Body, rc: http.NewResponseController(w), http1: r.ProtoMajor == 1,
		min: max(l.BodyMinBytes, 1), window: l.BodyWindow}
	// a body the handler never reads is bounded too: net/http reads what is left of it
	// once the handler is done
	if g.window > 0 {
		g.deadline(time.Now().Add(g.window))
	}
	// r is net/http's own request, whose Body it checks after the handler: a copy
	// carries the guard
	r = r.WithContext(context.WithValue(r.Context(), guardKey{}, g))
	r.Body = g
	return r
}

func (g *guardedBody) deadline(t time.Time) {
	if g.rc == nil {
		return
	}
	if err := g.rc.SetReadDeadline(t); err != nil {
		g.rc = nil // a connection without deadlines (a test's recorder)
	}
}

// errSlowBody is what reading a body that was cut off returns.
var errSlowBody = errors.New("the request body arrived too slowly")

func (g *guardedBody) Read(p []byte) (int, error) {
	if !g.reading && g.window > 0 {
		// the window starts when the handler asks for the body: a client that waits
		// for 100 Continue sends nothing before
		g.reading = true
		g.deadline(time.Now().Add(g.window))
	}
	n, err := g.body.Read(p)
	if g.window > 0 && n > 0 {
		if g.credit += int64(n); g.credit >= g.min {
			g.credit = 0
			g.deadline(time.Now().Add(g.window))
		}
	}
	switch {
	case err == io.EOF:
		// net/http reads on in the background from here, to notice a client that
		// goes away: no deadline may cut that read
		g.eof = true
		if g.window > 0 {
			g.deadline(time.Time{})
		}
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		g.cut = true
		err = errSlowBody
	}
	return n, err
}

func (g *guardedBody) Close() error { return g.body.Close() }

// answeringError readies r's connection for an error answer and returns the error to
// answer with. A body cut off for its pace is answered 408, whatever the handler made
// of the failed read. A body not read to its end is left unread: the connection
// closes after the answer, once the rest of the body has had a moment to arrive.
func answeringError(r *http.Request, w http.ResponseWriter, err error) error {
	g, _ := r.Context().Value(guardKey{}).(*guardedBody)
	if g == nil || g.eof {
		return err
	}
	if g.http1 {
		// HTTP/2 resets the stream of an unread body by itself; there, Connection:
		// close would end every other stream of the client's connection as well
		w.Header().Set("Connection", "close")
		g.deadline(time.Now().Add(bodyLinger))
	}
	if !g.cut {
		return err
	}
	code := errcode.BlobUploadInvalid
	if strings.Contains(r.URL.Path, "/manifests/") {
		code = errcode.ManifestInvalid
	}
	return &errcode.Error{Code: code, Status: http.StatusRequestTimeout,
		Message: fmt.Sprintf("the request body sent less than %d bytes in %s; the connection is closed", g.min, g.window)}
}
