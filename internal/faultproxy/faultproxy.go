// Package faultproxy is a TCP proxy for tests that puts the faults of a network and of
// a dependency between a client and its server: latency, connections reset, connections
// that stay open while nothing passes (half-open: a partition, a hung peer), and a
// server that is down for a while.
//
// Only tests use it: it sits in front of the real PostgreSQL and S3 server, so that a
// test sees what graft does when they fail.
package faultproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Mode is what the proxy does with connections.
type Mode int

const (
	// Pass forwards every byte, after the latency.
	Pass Mode = iota
	// HalfOpen accepts connections and keeps them open, and forwards nothing either
	// way: each side's writes fill the buffers and then wait, as with a peer that
	// vanished without a word. Connections opened meanwhile reach the server only
	// once the mode is Pass again.
	HalfOpen
	// Down resets every connection, open or new, as a server that is not there.
	Down
)

// Proxy forwards connections from its address to a target.
type Proxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	mode    Mode
	latency time.Duration
	changed chan struct{} // closed when mode changes
	conns   map[net.Conn]struct{}
	closed  bool
	wg      sync.WaitGroup
}

// Start starts a proxy to target (host:port) on a free loopback port; it stops when
// the test ends.
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target, changed: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.Close)
	return p
}

// Addr is where the proxy listens, host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetMode sets what the proxy does from now on. Leaving HalfOpen lets what waited
// pass (to Pass) or resets it (to Down).
func (p *Proxy) SetMode(m Mode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m == p.mode {
		return
	}
	p.mode = m
	close(p.changed)
	p.changed = make(chan struct{})
	if m == Down {
		p.resetLocked()
	}
}

// SetLatency delays every chunk forwarded, either way, by d.
func (p *Proxy) SetLatency(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.latency = d
}

// Reset resets every open connection, both sides, as a middlebox that drops its state
// does; new connections go on as before.
func (p *Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.resetLocked()
}

func (p *Proxy) resetLocked() {
	for c := range p.conns {
		reset(c)
		delete(p.conns, c)
	}
}

// Stop takes the server down for d: connections are reset and refused, then pass again.
func (p *Proxy) Stop(d time.Duration) {
	p.SetMode(Down)
	time.Sleep(d)
	p.SetMode(Pass)
}

// Close stops the proxy and resets its connections.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.ln.Close()
	p.resetLocked()
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
	p.wg.Wait()
}

// reset closes c with a TCP reset rather than a FIN.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// state returns the mode and latency, and a channel closed when the mode changes.
func (p *Proxy) state() (Mode, time.Duration, <-chan struct{}, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode, p.latency, p.changed, p.closed
}

// track records c as open, unless the proxy is closed.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) forget(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.handle(c)
		}()
	}
}

// handle forwards client connection c once the mode lets it reach the server.
func (p *Proxy) handle(c net.Conn) {
	if !p.track(c) {
		reset(c)
		return
	}
	defer p.forget(c)
	for {
		mode, _, changed, closed := p.state()
		switch {
		case closed || mode == Down:
			reset(c)
			return
		case mode == HalfOpen:
			<-changed
			continue
		}
		break
	}
	s, err := net.DialTimeout("tcp", p.target, 10*time.Second)
	if err != nil {
		reset(c)
		return
	}
	if !p.track(s) {
		reset(s)
		reset(c)
		return
	}
	defer p.forget(s)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(s, c) }()
	go func() { defer wg.Done(); p.pipe(c, s) }()
	wg.Wait()
}

// pipe copies from src to dst, a chunk at a time, each after the latency and only
// while the mode is Pass. When src ends, dst is closed for writing; when either fails,
// both are reset.
func (p *Proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.hold() {
				reset(src)
				reset(dst)
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				reset(src)
				reset(dst)
				return
			}
		}
		if errors.Is(err, io.EOF) {
			if tc, ok := dst.(*net.TCPConn); ok {
				tc.CloseWrite()
			}
			return
		}
		if err != nil {
			reset(src)
			reset(dst)
			return
		}
	}
}

// hold waits for the latency, and while the mode is HalfOpen; it reports false when a
// chunk must not pass (the proxy is down or closed).
func (p *Proxy) hold() bool {
	for {
		mode, latency, changed, closed := p.state()
		switch {
		case closed || mode == Down:
			return false
		case mode == HalfOpen:
			<-changed
			continue
		}
		if latency > 0 {
			time.Sleep(latency)
		}
		return true
	}
}
