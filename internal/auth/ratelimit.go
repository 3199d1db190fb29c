package auth

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// limiter refuses the sources that failed to log in too often: at most max failures
// per window, then nothing until the window ends. A refused source gets no password
// check at all, so that a flood of guesses costs the server no bcrypt work either.
type limiter struct {
	max    int
	window time.Duration

	mu      sync.Mutex
	sources map[string]*failures
}

type failures struct {
	n     int
	start time.Time
}

// maxSources bounds the limiter's memory; past it, expired entries go first, then
// everything (forgetting failures is better than running out of memory).
const maxSources = 100_000

func newLimiter(max int, window time.Duration) *limiter {
	return &limiter{max: max, window: window, sources: map[string]*failures{}}
}

// source names where a request comes from: its IP address, an IPv6 address by its /64,
// since one client holds a whole /64.
func source(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// allow reports whether src may try to log in, and if not, for how long it may not.
func (l *limiter) allow(src string, now time.Time) (bool, time.Duration) {
	if l == nil || l.max <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.sources[src]
	if f == nil {
		return true, 0
	}
	if now.Sub(f.start) >= l.window {
		delete(l.sources, src)
		return true, 0
	}
	if f.n >= l.max {
		return false, f.start.Add(l.window).Sub(now)
	}
	return true, 0
}

// fail records a failed login of src.
func (l *limiter) fail(src string, now time.Time) {
	if l == nil || l.max <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.sources[src]
	if f == nil || now.Sub(f.start) >= l.window {
		if len(l.sources) >= maxSources {
			l.prune(now)
		}
		f = &failures{start: now}
		l.sources[src] = f
	}
	f.n++
}

func (l *limiter) prune(now time.Time) {
	for k, f := range l.sources {
		if now.Sub(f.start) >= l.window {
			delete(l.sources, k)
		}
	}
	if len(l.sources) >= maxSources {
		l.sources = map[string]*failures{}
	}
}
