// Command rrproxy spreads requests round-robin over several registries, one request at
// a time, as a load balancer in front of graft replicas does; the test suite puts it in
// front of three scale-out replicas.
//
//	rrproxy [-listen 127.0.0.1:0] URL...
//
// It prints "listening on ADDR" on stdout once it accepts connections.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"

	"github.com/graft-registry/graft/internal/graftest"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: rrproxy [-listen ADDR] URL...")
		os.Exit(2)
	}
	var backends []*url.URL
	for _, a := range flag.Args() {
		u, err := url.Parse(a)
		if err != nil || u.Host == "" {
			log.Fatalf("rrproxy: %q is not a URL", a)
		}
		backends = append(backends, u)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("rrproxy: %v", err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	log.Fatal(http.Serve(ln, graftest.RoundRobin(backends)))
}
