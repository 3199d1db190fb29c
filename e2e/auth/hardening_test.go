package authe2e

import (
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"
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
				statuses[i] = doURL(t, httpClient, http.MethodGet, r.srv.URL+"/v2/", basic("dev", password), nil).Status
			case 1:
				statuses[i] = doURL(t, httpClient, http.MethodGet, r.srv.URL+"/auth/token?service=graft", basic("dev", password), nil).Status
			default:
				form := url.Values{"grant_type": {"password"}, "username": {"dev"}, "password": {password}, "service": {"graft"}}
				statuses[i] = doURL(t, httpClient, http.MethodPost, r.srv.URL+"/auth/token", "", []byte(form.Encode()),
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
