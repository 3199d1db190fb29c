package auth

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// limiter refuses the sources that failed to log in too often: at most max password
// checks that fail per window, then nothing until the window ends. A check takes its
// place in the budget before it starts and gives it back only when it succeeds, so
// that guesses sent in parallel are bounded as sequential ones are: however many
// arrive at once, no more than max of them are ever checked. A login that finds every
// place taken by checks under way waits for one of them to end: a right password
// gives its place back, so that many clients logging in at once from one address
// (a CI fleet behind one NAT) are served, one batch after another. A refused source
// gets no password check at all, so that a flood of guesses costs the server no
// bcrypt work either.
type limiter struct {
	max    int
	window time.Duration

	mu      sync.Mutex
	sources map[string]*attempts
}

// attempts are a source's logins in its current window: taken counts the checks
// under way and those that failed, failed only the latter.
type attempts struct {
	taken, failed int
	start         time.Time
	// changed is closed when a place is given back or kept, for the logins waiting
	// for one
	changed chan struct{}
}

// changes returns a channel closed at the next change of a's places.
func (a *attempts) changes() <-chan struct{} {
	if a.changed == nil {
		a.changed = make(chan struct{})
	}
	return a.changed
}

func (a *attempts) changedNow() {
	if a.changed != nil {
		close(a.changed)
		a.changed = nil
	}
}

// maxQueue is how long a login waits for a place in its source's budget.
const maxQueue = 10 * time.Second

// maxSources bounds the limiter's memory; past it, expired entries go first, then
// everything (forgetting failures is better than running out of memory).
const maxSources = 100_000

func newLimiter(max int, window time.Duration) *limiter {
	return &limiter{max: max, window: window, sources: map[string]*attempts{}}
}

// Source names where a request from remoteAddr comes from: its IP address, an IPv6
// address by its /64, since one client holds a whole /64.
func Source(remoteAddr string) string {
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

// attempt is a password check that holds a place in its source's budget.
type attempt struct {
	l     *limiter
	src   string
	start time.Time // of the window it was taken in
}

// blocked reports whether src has failed max times in its window, and if so, for how
// long it stays refused. It takes nothing: a login that needs no password check (one
// proven before) asks this alone.
func (l *limiter) blocked(src string, now time.Time) (bool, time.Duration) {
	if l == nil || l.max <= 0 {
		return false, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.current(src, now, false)
	if a == nil || a.failed < l.max {
		return false, 0
	}
	return true, a.start.Add(l.window).Sub(now)
}

// reserve takes a place in src's budget for one password check. When it cannot, it
// returns how long src stays refused if its failures spent the budget, or else a
// channel closed when a check under way ends, for the caller to try again.
func (l *limiter) reserve(src string, now time.Time) (*attempt, time.Duration, <-chan struct{}) {
	if l == nil || l.max <= 0 {
		return &attempt{}, 0, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.current(src, now, true)
	switch {
	case a.failed >= l.max:
		return nil, a.start.Add(l.window).Sub(now), nil
	case a.taken < l.max:
		a.taken++
		return &attempt{l: l, src: src, start: a.start}, 0, nil
	}
	return nil, 0, a.changes()
}

// current is src's entry for the window now is in, made when create says so.
// l.mu is held.
func (l *limiter) current(src string, now time.Time, create bool) *attempts {
	a := l.sources[src]
	if a != nil && now.Sub(a.start) >= l.window {
		a.changedNow() // its waiters start the next window
		delete(l.sources, src)
		a = nil
	}
	if a == nil && create {
		if len(l.sources) >= maxSources {
			l.prune(now)
		}
		a = &attempts{start: now}
		l.sources[src] = a
	}
	return a
}

// fail keeps the attempt's place: the check failed.
func (t *attempt) fail() {
	if t.l == nil {
		return
	}
	t.l.mu.Lock()
	defer t.l.mu.Unlock()
	if a := t.l.sources[t.src]; a != nil && a.start.Equal(t.start) {
		a.failed++
		a.changedNow()
	}
}

// release gives the attempt's place back: a right password is no guess, and a check
// the server could not make (its store failing) was none.
func (t *attempt) release() {
	if t.l == nil {
		return
	}
	t.l.mu.Lock()
	defer t.l.mu.Unlock()
	// a place taken in a window that has ended went with it
	if a := t.l.sources[t.src]; a != nil && a.start.Equal(t.start) {
		a.taken--
		a.changedNow()
		if a.taken == 0 {
			delete(t.l.sources, t.src)
		}
	}
}

func (l *limiter) prune(now time.Time) {
	for k, a := range l.sources {
		if now.Sub(a.start) >= l.window {
			a.changedNow()
			delete(l.sources, k)
		}
	}
	if len(l.sources) >= maxSources {
		for _, a := range l.sources {
			a.changedNow()
		}
		l.sources = map[string]*attempts{}
	}
}
