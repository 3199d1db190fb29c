package authe2e

import (
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/graft-registry/graft/internal/graftest"
)

func itoa(n int) string { return strconv.Itoa(n) }

// TestRefusesExposedAnonymous: without authentication, graft serve refuses an address
// other machines reach, before it listens, and says how to go on.
func TestRefusesExposedAnonymous(t *testing.T) {
	cmd := exec.CommandContext(t.Context(), graftest.Binary(t), "serve", "--addr", "0.0.0.0:0", "--data-dir", t.TempDir())
	cmd.Env = append(cmd.Environ(), "GRAFT_CONFIG=")
	done := make(chan struct{})
	var out []byte
	var err error
	go func() {
		out, err = cmd.CombinedOutput()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("graft serve --addr 0.0.0.0:0 without auth kept running")
	}
	if err == nil || !strings.Contains(string(out), "--insecure-anonymous") || strings.Contains(string(out), "listening") {
		t.Errorf("graft serve --addr 0.0.0.0:0 without auth: %v\n%s", err, out)
	}
	// loopback by name is loopback
	graftest.Start(t, "--addr", "localhost:0")
}

// TestRateLimitedLogins: a source that failed to log in too often is refused, with
// the right password too, until its minute is over.
func TestRateLimitedLogins(t *testing.T) {
	r := startRegistry(t, "  login-failures: 3\n")
	for i := 0; i < 3; i++ {
		if resp := r.do(http.MethodGet, "/v2/", basic("dev", "guess"+itoa(i)), nil); resp.Status != 401 {
			t.Fatalf("wrong password %d: %s", i, resp)
		}
	}
	resp := r.do(http.MethodGet, "/auth/token?service=graft", as("dev"), nil)
	if resp.Status != 429 || resp.ErrorCode() != "TOOMANYREQUESTS" || resp.Header.Get("Retry-After") == "" {
		t.Errorf("a login after 3 failures: %s, Retry-After %q", resp, resp.Header.Get("Retry-After"))
	}
	if resp := r.do(http.MethodGet, "/v2/", as("dev"), nil); resp.Status != 429 {
		t.Errorf("Basic credentials after 3 failures: %s", resp)
	}
}

// TestUsersChangeWhileServing: graft user add and remove take effect on a running
// server, and a removed user's tokens stop working.
func TestUsersChangeWhileServing(t *testing.T) {
	r := startRegistry(t, "")
	tok := r.token(as("outsider"), "repository:any/repo:pull")
	if resp := r.do(http.MethodGet, "/v2/", "Bearer "+tok, nil); resp.Status != 200 {
		t.Fatalf("outsider's token: %s", resp)
	}
	graft(t, "erin-Pa55word\n", "user", "add", "erin", "--password-stdin", "--config", r.config)
	graft(t, "", "user", "remove", "outsider", "--htpasswd", r.htpasswd)
	if users := strings.Fields(graft(t, "", "user", "list", "--htpasswd", r.htpasswd)); strings.Join(users, " ") != "admin dev erin" {
		t.Errorf("graft user list: %q", users)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		in := r.do(http.MethodGet, "/v2/", basic("erin", "erin-Pa55word"), nil)
		out := r.do(http.MethodGet, "/v2/", "Bearer "+tok, nil)
		if in.Status == 200 && out.Status == 401 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10s after the htpasswd file changed: erin gets %d, outsider's token %d", in.Status, out.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestTokenExpires: a repository-scoped token stops working when it expires, and so
// do the access tokens issued to it.
func TestTokenExpires(t *testing.T) {
	r := startRegistry(t, "")
	r.pushImage("team/app", "v1", nil)
	// A token that expires soon, used before it does: on a machine too slow to create
	// it and log in with it within its life, again with a longer one.
	var (
		name, secret, access string
		expires              time.Duration
		created              time.Time
	)
	for expires = 3 * time.Second; ; expires *= 2 {
		name, created = "brief-"+itoa(int(expires.Seconds())), time.Now()
		secret = strings.TrimSpace(graft(t, "", "token", "create", name, "--repo", "team/**", "--action", "pull",
			"--expires", expires.String(), "--config", r.config, "--data-dir", r.srv.DataDir))
		access = r.token(basic(name, secret), "repository:team/app:pull")
		resp := r.do(http.MethodGet, "/v2/team/app/tags/list", basic(name, secret), nil)
		if time.Since(created) < expires {
			if resp.Status != 200 {
				t.Fatalf("a fresh token: %s", resp)
			}
			break
		}
		if expires > 5*time.Minute {
			t.Fatalf("creating a token and logging in with it took %s", time.Since(created))
		}
	}
	// the access token ends with the token, not 5 minutes later; allow the leeway
	// replicas' clocks get
	time.Sleep(time.Until(created.Add(expires + time.Second)))
	if resp := r.do(http.MethodGet, "/v2/team/app/tags/list", basic(name, secret), nil); resp.Status != 401 {
		t.Errorf("an expired token's secret: %s", resp)
	}
	if resp := r.do(http.MethodGet, "/auth/token?service=graft", basic(name, secret), nil); resp.Status != 401 {
		t.Errorf("a token for an expired token: %s", resp)
	}
	list := graft(t, "", "token", "list", "--config", r.config, "--data-dir", r.srv.DataDir)
	if !strings.Contains(list, "(expired)") {
		t.Errorf("graft token list does not say the token expired:\n%s", list)
	}
	c := claimsOf(t, access)
	exp, _ := c["exp"].(interface{ Int64() (int64, error) }).Int64()
	iat, _ := c["iat"].(interface{ Int64() (int64, error) }).Int64()
	if exp-iat > int64(expires.Seconds())+1 {
		t.Errorf("the access token of a token with %s left lives %ds", expires, exp-iat)
	}
}

var jwtRe = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{10,}\.eyJ`)
var secretRe = regexp.MustCompile(`graft_[A-Za-z0-9_-]{43}`)

// noSecretsLogged fails the test when the server's log holds a password of the test
// users, a JWT or a token secret.
func noSecretsLogged(t *testing.T, log string) {
	t.Helper()
	for u, p := range passwords {
		if strings.Contains(log, p) {
			t.Errorf("the server logged %s's password", u)
		}
	}
	if m := jwtRe.FindString(log); m != "" {
		t.Errorf("the server logged a token: %s…", m[:12])
	}
	if secretRe.MatchString(log) {
		t.Error("the server logged a repository token's secret")
	}
}
