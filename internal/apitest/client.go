// Package apitest speaks a registry's HTTP API raw, for tests: requests whose answers
// are read in full, the checks of the statuses, error bodies and Link pages the
// distribution spec prescribes, and the content tests push (blobs, images, indexes).
//
// The registries tests run against offer it: registrytest's in process, graftest's
// `graft serve` processes. Real clients (oras-go, the client binaries) stay in the
// tests that are about them; a client would hide what is checked here.
package apitest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// Client sends requests to the API of one registry. Each request goes once, with no
// retry, and no redirect is followed: the answer a test sees is the registry's own.
type Client struct {
	// URL is the registry's base URL: scheme, host and port.
	URL string
	// HTTP sends the requests.
	HTTP *http.Client
}

// requestTimeout bounds one request, so that a registry that hangs fails its test
// instead of the whole test binary at go test's timeout.
const requestTimeout = 5 * time.Minute

// NewClient returns a client of the registry at url, with a transport of its own that
// asks for no compression (bodies are compared byte for byte) and keeps enough idle
// connections for concurrent pushes.
func NewClient(url string) *Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	tr.DisableCompression = true
	return &Client{URL: url, HTTP: &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       requestTimeout,
	}}
}

// CloseIdleConnections drops the client's idle connections, which a registry that was
// killed left dead.
func (c *Client) CloseIdleConnections() { c.HTTP.CloseIdleConnections() }

// Response is an answer read in full.
type Response struct {
	// Method and URL are those of the request, for messages.
	Method, URL string
	Status      int
	Header      http.Header
	Body        []byte
}

// String shows the answer's status, headers (but Date) and the start of its body.
func (r *Response) String() string {
	var hdr []string
	for k, v := range r.Header {
		if k != "Date" {
			hdr = append(hdr, k+": "+strings.Join(v, ", "))
		}
	}
	slices.Sort(hdr)
	return fmt.Sprintf("%d [%s] %s", r.Status, strings.Join(hdr, "; "), clip(r.Body))
}

func clip(b []byte) string {
	if len(b) > 512 {
		return string(b[:512]) + "…"
	}
	return string(b)
}

// Do sends a request and fails the test when no answer comes. target is a path with
// its query, or a URL as a Location or Link header gives it; body is sent with its
// length (none when nil); headers are key, value pairs, and a pair whose value is
// empty is left out.
func (c *Client) Do(t testing.TB, method, target string, body []byte, headers ...string) *Response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	return c.must(t, method, target, rd, headers)
}

// DoStream is Do with a body of unknown length: it goes out chunked, and the registry
// learns its size only by reading it.
func (c *Client) DoStream(t testing.TB, method, target string, body io.Reader, headers ...string) *Response {
	t.Helper()
	// NewRequest takes the length of the readers it knows; hide it.
	return c.must(t, method, target, struct{ io.Reader }{body}, headers)
}

func (c *Client) must(t testing.TB, method, target string, body io.Reader, headers []string) *Response {
	t.Helper()
	if len(headers)%2 != 0 {
		t.Fatalf("odd number of header arguments: %q", headers)
	}
	r, err := c.Try(t.Context(), method, target, body, headers...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Want is Do that stops the test unless the answer has status.
func (c *Client) Want(t testing.TB, status int, method, target string, body []byte, headers ...string) *Response {
	t.Helper()
	r := c.Do(t, method, target, body, headers...)
	WantStatus(t, method+" "+target, r, status)
	return r
}

// Try sends a request and returns the answer or why none came, for requests a test
// expects to fail (the registry killed) or sends where it cannot stop (other
// goroutines).
func (c *Client) Try(ctx context.Context, method, target string, body io.Reader, headers ...string) (*Response, error) {
	u, err := c.Resolve(target)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] != "" {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", method, target, err)
	}
	return &Response{Method: method, URL: u, Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// Resolve makes target, a path or a URL, a URL of the registry. A path is taken as
// it is, dot segments and all: tests send paths a client library would clean.
func (c *Client) Resolve(target string) (string, error) {
	u, err := url.Parse(target)
	if err != nil {
		return "", fmt.Errorf("resolving %q: %w", target, err)
	}
	if u.IsAbs() {
		return target, nil
	}
	if !strings.HasPrefix(target, "/") {
		return "", fmt.Errorf("resolving %q: neither a URL nor an absolute path", target)
	}
	return c.URL + target, nil
}

// Pages GETs target and every page its Link headers lead to, each of which must
// answer 200, and returns the answers in order. A registry whose links never end fails
// the test after max pages.
func (c *Client) Pages(t testing.TB, target string, max int) []*Response {
	t.Helper()
	var pages []*Response
	for target != "" {
		if len(pages) == max {
			t.Fatalf("more than %d pages; the last link was %s", max, target)
		}
		r := c.Want(t, http.StatusOK, http.MethodGet, target, nil)
		pages = append(pages, r)
		target = NextLink(t, r)
	}
	return pages
}
