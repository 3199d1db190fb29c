package graftest

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
)

// RoundRobin is a reverse proxy that sends each request to the next of its backends in
// turn: consecutive requests of one client, even on one connection (a POST and the
// PATCH that follows it), land on different replicas, as behind a load balancer.
func RoundRobin(backends []*url.URL) http.Handler {
	var next atomic.Uint64
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			b := backends[(next.Add(1)-1)%uint64(len(backends))]
			r.SetURL(b)
			r.Out.Host = r.In.Host // the replicas see the address clients use
		},
		Transport:     tr,
		FlushInterval: -1,
	}
}

// StartRoundRobin serves RoundRobin over servers on a free loopback port until the
// test ends, and returns its address.
func StartRoundRobin(t testing.TB, servers ...*Server) string {
	t.Helper()
	var backends []*url.URL
	for _, s := range servers {
		u, err := url.Parse(s.URL)
		if err != nil {
			t.Fatal(err)
		}
		backends = append(backends, u)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: RoundRobin(backends)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}
