package authe2e

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/graft-registry/graft/internal/apitest"
	"github.com/graft-registry/graft/internal/auth"
)

// What an attacker tries against a registry with authentication on: bursts of
// guesses, slow bodies, memory, timing, odd scopes, forged signatures, forged headers.

// TestParallelGuessesLimited: guesses sent all at once are checked no more often than
// the limit allows, whichever endpoint takes them (Basic on the API, the token
// endpoint's GET and its password grant), and the right password works again once the
// window is over.
func TestParallelGuessesLimited(t *testing.T) {
	const limit, guesses = 5, 60
	r := startRegistry(t, "  login-failures: 5\n  login-window: 15s\n")
	var wg sync.WaitGroup
	statuses := make([]int, guesses)
	start := make(chan struct{})
	for i := range guesses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			password := "guess-" + itoa(i)
			switch i % 3 {
			case 0:
				statuses[i] = r.do(http.MethodGet, "/v2/", basic("dev", password), nil).Status
			case 1:
				statuses[i] = r.do(http.MethodGet, "/auth/token?service=graft", basic("dev", password), nil).Status
			default:
				form := url.Values{"grant_type": {"password"}, "username": {"dev"}, "password": {password}, "service": {"graft"}}
				statuses[i] = r.do(http.MethodPost, "/auth/token", "", []byte(form.Encode()),
					"Content-Type", "application/x-www-form-urlencoded").Status
			}
		}()
	}
	close(start)
	wg.Wait()
	count := map[int]int{}
	for _, s := range statuses {
		count[s]++
	}
	if count[401] < 1 || count[401] > limit || count[401]+count[429] != guesses {
		t.Fatalf("%d parallel wrong passwords with login-failures %d: %v (status: how many); want at most %d checked (401), the rest refused (429)",
			guesses, limit, count, limit)
	}
	if resp := r.do(http.MethodGet, "/v2/", as("dev"), nil); resp.Status != 429 {
		t.Errorf("the right password in the spent window: %s", resp)
	}
	// the window is 15 s: a minute past it, the right password must long have worked
	deadline := time.Now().Add(75 * time.Second)
	for {
		resp := r.do(http.MethodGet, "/v2/", as("dev"), nil)
		if resp.Status == 200 {
			break
		}
		if resp.Status != 429 || time.Now().After(deadline) {
			t.Fatalf("the right password after the window: %s", resp)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// rawRequest sends a request's head, and whatever of its body the test writes next,
// on a connection of its own.
func rawRequest(t *testing.T, addr, method, target, authz string, contentLength int) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	head := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n",
		method, target, addr, contentLength)
	if authz != "" {
		head += "Authorization: " + authz + "\r\n"
	}
	if _, err := io.WriteString(conn, head+"\r\n"); err != nil {
		t.Fatal(err)
	}
	return conn
}

// trickle writes a byte a second to conn until a write fails or stop closes.
func trickle(conn net.Conn, stop <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if _, err := conn.Write([]byte{'x'}); err != nil {
			return
		}
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

// answerAndClose reads the answer on conn and then waits for the server to close the
// connection. The bound is generous: it only tells an answer from none.
func answerAndClose(t *testing.T, conn net.Conn, what string) *http.Response {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(90 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("%s: no answer: %v", what, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if _, err := br.ReadByte(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("%s: answered %d, but the connection stayed open (%v)", what, resp.StatusCode, err)
	}
	return resp
}

// TestSlowBodies: a body that arrives a byte a second holds no connection: a
// request the server refuses is answered at once, without its body, and its
// connection closed; one it accepts is cut off when its body falls below the minimum
// rate. A body that keeps up goes through, however many windows it takes.
func TestSlowBodies(t *testing.T) {
	r := startRegistry(t, "", "--limits-body-window", "3s", "--limits-body-min-bytes", "1024")
	loc := r.do(http.MethodPost, "/v2/team/app/blobs/uploads/", as("admin"), nil).Header.Get("Location")
	if loc == "" {
		t.Fatal("no upload session")
	}

	t.Run("refused", func(t *testing.T) {
		for _, authz := range []string{"", as("outsider") + "x", "Bearer nonsense"} {
			conn := rawRequest(t, r.srv.Addr, http.MethodPatch, loc, authz, 200000)
			stop := make(chan struct{})
			go trickle(conn, stop)
			resp := answerAndClose(t, conn, fmt.Sprintf("a slow body with credentials %q", authz))
			close(stop)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("a slow body with credentials %q: %d", authz, resp.StatusCode)
			}
		}
	})
	t.Run("cut", func(t *testing.T) {
		conn := rawRequest(t, r.srv.Addr, http.MethodPatch, loc, as("admin"), 200000)
		stop := make(chan struct{})
		defer close(stop)
		go trickle(conn, stop)
		resp := answerAndClose(t, conn, "an authorized slow body")
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), "BLOB_UPLOAD_INVALID") {
			t.Errorf("an authorized slow body: %d %s", resp.StatusCode, body)
		}
	})
	t.Run("steady", func(t *testing.T) {
		// 4 KiB every 100 ms for over two windows: 40 times the minimum
		blob := bytes.Repeat([]byte("steady "), 300<<10/7)
		loc := r.do(http.MethodPost, "/v2/team/app/blobs/uploads/", as("admin"), nil).Header.Get("Location")
		conn := rawRequest(t, r.srv.Addr, http.MethodPatch, loc, as("admin"), len(blob))
		start := time.Now()
		for rest := blob; len(rest) > 0; {
			n := min(4096, len(rest))
			if _, err := conn.Write(rest[:n]); err != nil {
				t.Fatalf("after %d bytes in %s: %v", len(blob)-len(rest), time.Since(start), err)
			}
			rest = rest[n:]
			time.Sleep(100 * time.Millisecond)
		}
		conn.SetReadDeadline(time.Now().Add(90 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil || resp.StatusCode != http.StatusAccepted {
			t.Fatalf("a steady body over %s: %v %v", time.Since(start), resp, err)
		}
		if got := resp.Header.Get("Range"); got != fmt.Sprintf("0-%d", len(blob)-1) {
			t.Errorf("Range after a steady body: %q", got)
		}
	})
}

// heap is the server's heap as its /metrics tell: bytes in use, and bytes the runtime
// holds from the operating system (what of the heap counts in its RSS).
func (r *registry) heap() (inUse, retained float64) {
	r.t.Helper()
	resp := r.do(http.MethodGet, "/metrics", "", nil)
	m := map[string]float64{}
	for line := range strings.Lines(string(resp.Body)) {
		name, value, ok := strings.Cut(strings.TrimSpace(line), " ")
		if ok && strings.HasPrefix(name, "go_memstats_heap_") {
			var v float64
			fmt.Sscan(value, &v)
			m[name] = v
		}
	}
	if m["go_memstats_heap_sys_bytes"] == 0 {
		r.t.Fatalf("no heap metrics in /metrics: %s", resp)
	}
	return m["go_memstats_heap_inuse_bytes"], m["go_memstats_heap_sys_bytes"] - m["go_memstats_heap_released_bytes"]
}

// TestUnfinishedManifestPuts: 60 manifest PUTs of 4 MiB that never send their last
// byte hold no more memory than the manifest budget, the rest are answered 429, and
// the memory goes back once they are gone.
func TestUnfinishedManifestPuts(t *testing.T) {
	const (
		puts   = 60
		size   = 4 << 20
		budget = 16 << 20
		mib    = 1 << 20
	)
	r := startRegistry(t, "", "--limits-manifest-memory", itoa(budget))
	baseInUse, baseRetained := r.heap()

	var peakInUse, peakRetained float64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			inUse, retained := r.heap()
			peakInUse, peakRetained = max(peakInUse, inUse), max(peakRetained, retained)
			select {
			case <-stopSampling:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()

	body := bytes.Repeat([]byte(" "), size-1) // all but the last byte
	conns := make([]net.Conn, puts)
	var wg sync.WaitGroup
	for i := range conns {
		conns[i] = rawRequest(t, r.srv.Addr, http.MethodPut, "/v2/team/big/manifests/v"+itoa(i), as("admin"), size)
		wg.Add(1)
		go func() {
			defer wg.Done()
			conns[i].Write(body) // fails once the server gives up on the request
		}()
	}
	written := make(chan struct{})
	go func() { wg.Wait(); close(written) }()
	select {
	case <-written:
	case <-time.After(3 * time.Minute):
		t.Fatal("the bodies were neither read nor refused")
	}
	time.Sleep(time.Second) // a last sample of the requests still held
	close(stopSampling)
	<-sampled

	refused := 0
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(b), "TOOMANYREQUESTS") {
				t.Errorf("an unfinished manifest PUT answered %d %s", resp.StatusCode, b)
			}
			refused++
		}
	}
	t.Logf("heap in use %.0f MiB at first, %.0f MiB at most; held from the system %.0f MiB, %.0f MiB at most; %d of %d PUTs refused",
		baseInUse/mib, peakInUse/mib, baseRetained/mib, peakRetained/mib, refused, puts)
	// 60 bodies of 4 MiB held at once would be 240 MiB; the budget allows 16 MiB, and
	// the margin leaves room for the garbage of growing buffers before a collection
	if peakInUse-baseInUse > 100*mib {
		t.Errorf("unfinished manifest PUTs took %.0f MiB of heap, with a budget of %d MiB", (peakInUse-baseInUse)/mib, budget/mib)
	}
	if refused == 0 {
		t.Errorf("none of %d unfinished 4 MiB manifest PUTs was refused with a budget of %d MiB", puts, budget/mib)
	}

	for _, c := range conns {
		c.Close()
	}
	deadline := time.Now().Add(time.Minute)
	for {
		inUse, retained := r.heap()
		if inUse-baseInUse < 16*mib && retained-baseRetained < 32*mib {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a minute after the PUTs ended the heap holds %.0f MiB in use, %.0f MiB from the system (%.0f, %.0f at first)",
				inUse/mib, retained/mib, baseInUse/mib, baseRetained/mib)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// bcryptCost is the lowest bcrypt cost whose comparison takes at least d here: the
// server, built as this test is (with the race detector or without), takes about as
// long.
func bcryptCost(t *testing.T, d time.Duration) int {
	t.Helper()
	for cost := bcrypt.MinCost; cost < bcrypt.DefaultCost; cost++ {
		h, err := bcrypt.GenerateFromPassword([]byte("x"), cost)
		if err != nil {
			t.Fatal(err)
		}
		fastest := time.Hour
		for range 3 {
			start := time.Now()
			bcrypt.CompareHashAndPassword(h, []byte("y"))
			fastest = min(fastest, time.Since(start))
		}
		if fastest >= d {
			return cost
		}
	}
	return bcrypt.DefaultCost
}

// TestFailedLoginsTakeAlike: a failed login takes as long whether its name is a
// repository token's, a user's or nobody's, so that the time of an answer tells no
// names. The medians of 50 attempts of each kind are within 20% of each other.
func TestFailedLoginsTakeAlike(t *testing.T) {
	// a cost that makes a comparison take 30 ms or more, and the test short
	cost := bcryptCost(t, 30*time.Millisecond)
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	graft(t, "timer-Pa55word\n", "user", "add", "timer", "--password-stdin", "--htpasswd", htpasswd, "--bcrypt-cost", itoa(cost))
	r := startRegistry(t, "  login-failures: 0\n", "--htpasswd", htpasswd)
	graft(t, "", "token", "create", "ci-timer", "--repo", "team/**", "--action", "pull",
		"--config", r.config, "--htpasswd", htpasswd, "--data-dir", r.srv.DataDir)

	// secrets start with graft_: an attacker probing for token names sends such
	// passwords, and others
	kinds := []struct{ name, authz string }{
		{"a token's name, a wrong secret", basic("ci-timer", "graft_wrongwrongwrongwrongwrongwrongwrongwrong")},
		{"a token's name, a wrong password", basic("ci-timer", "wrong-Pa55word")},
		{"a user's name, a wrong secret", basic("timer", "graft_wrongwrongwrongwrongwrongwrongwrongwrong")},
		{"a user's name, a wrong password", basic("timer", "wrong-Pa55word")},
		{"an unknown name, a wrong secret", basic("nobody-here", "graft_wrongwrongwrongwrongwrongwrongwrongwrong")},
		{"an unknown name, a wrong password", basic("nobody-here", "wrong-Pa55word")},
	}
	// On a machine busy with other work a round's times wander by more than the 20%
	// the medians must agree within: a measurement is taken again, three times at
	// most, before the test says the times differ. A path that skips the password
	// check answers in a fraction of the time every time.
	var m []time.Duration
	for attempt := 1; ; attempt++ {
		m = failedLoginMedians(t, r, kinds, 50)
		for i := range kinds {
			t.Logf("attempt %d: %s: median %s of 50 (bcrypt cost %d)", attempt, kinds[i].name, m[i], cost)
		}
		if !apart(m, 1.2) {
			return
		}
		if apart(m, 3) || attempt == 3 {
			break
		}
	}
	t.Errorf("failed logins take from %s to %s (medians): more than 20%% apart", slices.Min(m), slices.Max(m))
}

// apart reports whether the largest of m is more than by times the smallest.
func apart(m []time.Duration, by float64) bool {
	return float64(slices.Max(m)) > by*float64(slices.Min(m))
}

// failedLoginMedians sends rounds failed logins of each kind, the kinds in a new order
// each round, and returns the median time of each kind.
func failedLoginMedians(t *testing.T, r *registry, kinds []struct{ name, authz string }, rounds int) []time.Duration {
	t.Helper()
	took := make([][]time.Duration, len(kinds))
	for round := -1; round < rounds; round++ { // round -1 warms up, uncounted
		for _, i := range rand.Perm(len(kinds)) {
			start := time.Now()
			resp := r.do(http.MethodGet, "/v2/", kinds[i].authz, nil)
			d := time.Since(start)
			if resp.Status != http.StatusUnauthorized {
				t.Fatalf("%s: %s", kinds[i].name, resp)
			}
			if round >= 0 {
				took[i] = append(took[i], d)
			}
		}
	}
	out := make([]time.Duration, len(kinds))
	for i := range kinds {
		sorted := slices.Sorted(slices.Values(took[i]))
		out[i] = sorted[len(sorted)/2]
	}
	return out
}

// TestScopeNames: the token endpoint grants nothing for a scope whose name is no
// repository name, through GET and the password grant, even to an admin.
func TestScopeNames(t *testing.T) {
	r := startRegistry(t, "")
	// the names as the scope parameter carries them, before the query is decoded
	for _, name := range []string{"team/../private/z", "team/*", "team//a", "team/a/", "team/a%00", "team/a%2500", "team/a:pull"} {
		scope := "repository:" + name + ":pull,push"
		get := r.do(http.MethodGet, "/auth/token?service=graft&scope="+strings.ReplaceAll(scope, "/", "%2F"), as("admin"), nil)
		form := "grant_type=password&username=admin&password=" + url.QueryEscape(passwords["admin"]) + "&service=graft&scope=" + scope
		post := r.do(http.MethodPost, "/auth/token", "", []byte(form), "Content-Type", "application/x-www-form-urlencoded")
		for _, resp := range []*apitest.Response{get, post} {
			var body struct {
				AccessToken string `json:"access_token"`
				Scope       string `json:"scope"`
			}
			if resp.Status != 200 || json.Unmarshal(resp.Body, &body) != nil || body.AccessToken == "" {
				t.Fatalf("token for %q: %s", name, resp)
			}
			if body.Scope != "" || claimsOf(t, body.AccessToken)["access"] != nil {
				t.Errorf("a token for %q grants %q, access %v", name, body.Scope, claimsOf(t, body.AccessToken)["access"])
			}
		}
	}
	// the same request with a repository name is granted
	tok := r.token(as("admin"), "repository:team/a:pull,push")
	if access := claimsOf(t, tok)["access"]; access == nil {
		t.Error("no access granted for team/a")
	}
}

// TestHighSRefused: the server issues tokens whose ECDSA signature has the low-S
// form, and refuses the same token with s replaced by n-s, which ECDSA alone accepts.
func TestHighSRefused(t *testing.T) {
	r := startRegistry(t, "")
	n := r.key.Curve.Params().N
	var tok string
	for range 32 { // each would be high-S half the time
		tok = r.token(as("admin"), "repository:team/app:pull")
		sig, err := base64.RawURLEncoding.DecodeString(tok[strings.LastIndexByte(tok, '.')+1:])
		if err != nil || len(sig) != 64 {
			t.Fatalf("signature of %q: %v", tok, err)
		}
		if s := new(big.Int).SetBytes(sig[32:]); s.Cmp(new(big.Int).Rsh(n, 1)) > 0 {
			t.Fatal("the server issued a token with a high s")
		}
	}
	if resp := r.do(http.MethodGet, "/v2/team/app/tags/list", "Bearer "+tok, nil); resp.Status != 404 {
		t.Fatalf("the token as issued: %s", resp)
	}
	dot := strings.LastIndexByte(tok, '.')
	sig, _ := base64.RawURLEncoding.DecodeString(tok[dot+1:])
	high := new(big.Int).Sub(n, new(big.Int).SetBytes(sig[32:]))
	forged := tok[:dot+1] + base64.RawURLEncoding.EncodeToString(append(sig[:32:32], high.FillBytes(make([]byte, 32))...))
	digest := sha256.Sum256([]byte(tok[:dot]))
	if !ecdsa.Verify(&r.key.PublicKey, digest[:], new(big.Int).SetBytes(sig[:32]), high) {
		t.Fatal("(r, n-s) is no valid signature: the test proves nothing")
	}
	if resp := r.do(http.MethodGet, "/v2/team/app/tags/list", "Bearer "+forged, nil); resp.Status != 401 {
		t.Errorf("the token with s replaced by n-s: %s", resp)
	}
}

// TestForwardedHeaders: X-Forwarded-For, -Proto and -Host count only from the peers
// trusted-proxies lists. Without it, a client's headers change neither the realm of a
// challenge nor whom the login limiter counts; with it, the proxy's say both.
func TestForwardedHeaders(t *testing.T) {
	realm := func(resp *apitest.Response) string {
		c, err := auth.ParseChallenge(resp.Header.Get("WWW-Authenticate"))
		if err != nil {
			t.Fatalf("challenge of %s: %v", resp, err)
		}
		return c.Params["realm"]
	}
	forwardedFrom := func(client string) []string {
		return []string{"X-Forwarded-For", client, "X-Forwarded-Proto", "https", "X-Forwarded-Host", "registry.example"}
	}
	guess := func(r *registry, client string, i int) int {
		return r.do(http.MethodGet, "/v2/", basic("dev", "guess"+itoa(i)), nil, forwardedFrom(client)...).Status
	}

	t.Run("untrusted", func(t *testing.T) {
		r := startRegistry(t, "  login-failures: 3\n")
		if got := realm(r.do(http.MethodGet, "/v2/", "", nil, forwardedFrom("198.51.100.7")...)); got != r.srv.URL+auth.TokenPath {
			t.Errorf("realm with a client's forwarded headers: %q", got)
		}
		// every guess claims another client: all are counted as the peer's
		for i := range 3 {
			if s := guess(r, "198.51.100."+itoa(i), i); s != 401 {
				t.Fatalf("guess %d: %d", i, s)
			}
		}
		if resp := r.do(http.MethodGet, "/v2/", as("dev"), nil, forwardedFrom("198.51.100.99")...); resp.Status != 429 {
			t.Errorf("after 3 failures of the peer, under another X-Forwarded-For: %s", resp)
		}
	})
	t.Run("trusted", func(t *testing.T) {
		r := startRegistry(t, "  login-failures: 3\n", "--trusted-proxies", "127.0.0.1/32")
		if got := realm(r.do(http.MethodGet, "/v2/", "", nil, forwardedFrom("198.51.100.7")...)); got != "https://registry.example"+auth.TokenPath {
			t.Errorf("realm behind a trusted proxy: %q", got)
		}
		for i := range 3 {
			if s := guess(r, "198.51.100.7", i); s != 401 {
				t.Fatalf("guess %d: %d", i, s)
			}
		}
		if resp := r.do(http.MethodGet, "/v2/", as("dev"), nil, forwardedFrom("198.51.100.7")...); resp.Status != 429 {
			t.Errorf("the client that failed 3 times: %s", resp)
		}
		// another client of the same proxy, and a client that names the first one
		// before its own address (the proxy appends the real one)
		for _, client := range []string{"198.51.100.8", "198.51.100.7, 198.51.100.9"} {
			if resp := r.do(http.MethodGet, "/v2/", as("dev"), nil, forwardedFrom(client)...); resp.Status != 200 {
				t.Errorf("another client, X-Forwarded-For %q: %s", client, resp)
			}
		}
	})
}
