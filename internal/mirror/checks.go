package mirror

import (
	"sync"
	"time"
)

// checks remember when upstream last confirmed something the mirror holds (a tag, the
// referrers of a manifest), so that for a TTL after it the mirror answers without
// asking again. They live in memory: a restarted process, or another replica, asks
// upstream once more, which costs a request and never serves anything older than a
// TTL. Entries older than the TTL are dropped as the map is written, so it holds no
// more than what was confirmed within one TTL.
type checks struct {
	ttl   time.Duration
	mu    sync.Mutex
	at    map[string]time.Time
	swept time.Time
}

func newChecks(ttl time.Duration) *checks {
	return &checks{ttl: ttl, at: map[string]time.Time{}}
}

// fresh reports whether key was confirmed less than a TTL before now.
func (c *checks) fresh(key string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	at, ok := c.at[key]
	return ok && now.Sub(at) < c.ttl
}

// confirm records that upstream confirmed key at now.
func (c *checks) confirm(key string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at[key] = now
	// a sweep every TTL (at least every minute) keeps the cost of each write constant
	if now.Sub(c.swept) >= max(c.ttl, time.Minute) {
		for k, at := range c.at {
			if now.Sub(at) >= c.ttl {
				delete(c.at, k)
			}
		}
		c.swept = now
	}
}

// key is the key of ref (a tag, a digest) of repo.
func key(repo, ref string) string { return repo + "\x00" + ref }
