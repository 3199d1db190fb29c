package uie2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/graft-registry/graft/internal/graftest"
)

var passwords = map[string]string{"admin": "admin-Pa55word", "dev": "dev-Pa55word"}

// startWithAuth starts graft serve with access control: admin may do everything, dev
// may pull and push team/**, anyone may pull public/*.
func startWithAuth(t *testing.T) *graftest.Server {
	t.Helper()
	dir := t.TempDir()
	htpasswd := filepath.Join(dir, "htpasswd")
	for _, u := range []string{"admin", "dev"} {
		cmd := exec.Command(graftest.Binary(t), "user", "add", u, "--password-stdin", "--htpasswd", htpasswd)
		cmd.Env = append(os.Environ(), "GRAFT_CONFIG=")
		cmd.Stdin = strings.NewReader(passwords[u] + "\n")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("graft user add %s: %v\n%s", u, err, out.String())
		}
	}
	config := filepath.Join(dir, "graft.yaml")
	yaml := fmt.Sprintf(`auth:
  htpasswd: %s
  admins: [admin]
  policies:
    - repositories: ["team/**"]
      pull: [dev]
      push: [dev]
    - repositories: ["public/*"]
      anonymous-pull: true
`, htpasswd)
	if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return graftest.Start(t, "--config", config)
}

// listed is the repositories the list page shows.
func listed(tb *tab) []string {
	tb.t.Helper()
	names := eval[[]string](tb, `[...document.querySelectorAll('table.list tbody td:first-child a')].map(a => a.textContent)`)
	slices.Sort(names)
	return names
}

// TestLogin: with access control on, the view shows what anyone may pull, logs in
// with a password (a wrong one is refused), then shows what the user may pull and
// offers what the user may do, and logs out.
func TestLogin(t *testing.T) {
	srv := startWithAuth(t)
	for _, repo := range []string{"team/app", "public/site", "secret/app"} {
		r := repository(t, srv.Addr, repo, "admin", passwords["admin"])
		pushIndex(t, r, "v1", pushImage(t, r, "linux", "amd64", ""))
	}
	tb := newTab(t)

	tb.open(srv.URL + "/ui/")
	if got := listed(tb); !slices.Equal(got, []string{"public/site"}) {
		t.Errorf("before login the list shows %q, want public/site", got)
	}
	tb.screenshot("anonymous")

	tb.click(`header a[href="/ui/_login"]`)
	tb.screenshot("login")
	tb.do(
		chromedp.SendKeys(chromedp.ID("user"), "dev"),
		chromedp.SendKeys(chromedp.ID("password"), "not the password"),
	)
	tb.click(`form button.primary`)
	if got := tb.text(".error"); !strings.Contains(got, "Wrong name or password") {
		t.Errorf("a wrong password: %q", got)
	}
	tb.screenshot("login-failed")
	if user := run(tb, chromedp.Value(chromedp.ID("user"))); user != "dev" {
		t.Errorf("the failed login's page forgot the name: %q", user)
	}
	tb.do(chromedp.SendKeys(chromedp.ID("password"), passwords["dev"]))
	tb.click(`form button.primary`)
	if got := listed(tb); !slices.Equal(got, []string{"public/site", "team/app"}) {
		t.Errorf("dev's list shows %q, want public/site and team/app", got)
	}
	if who := tb.text(".who .user"); who != "dev" {
		t.Errorf("the header names %q", who)
	}
	tb.screenshot("logged-in")

	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{srv.URL + "/ui/"}})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range res.Cookies {
		if c.Name == "graft_session" {
			found = true
			if !c.HTTPOnly || c.SameSite != network.CookieSameSiteStrict || c.Path != "/ui/" {
				t.Errorf("the session cookie: httpOnly %v, sameSite %q, path %q", c.HTTPOnly, c.SameSite, c.Path)
			}
		}
	}
	if !found {
		t.Error("no session cookie after the login")
	}
	if n := eval[int](tb, `document.cookie.length`); n != 0 {
		t.Errorf("the page's script sees cookies: %d characters", n)
	}

	// what dev may not pull is not there; what dev may not delete is not offered
	tb.open(srv.URL + "/ui/secret/app")
	if h := tb.text("h1"); h != "Not Found" {
		t.Errorf("dev opens secret/app: %q", h)
	}
	tb.screenshot("not-found")
	tb.open(srv.URL + "/ui/team/app:v1")
	if n := eval[int](tb, `document.querySelectorAll('a.button.danger, button[value=lock]').length`); n != 0 {
		t.Errorf("dev, who may not delete, is offered %d actions", n)
	}
	tb.screenshot("no-actions")

	tb.click(`header form button`)
	if got := listed(tb); !slices.Equal(got, []string{"public/site"}) {
		t.Errorf("after logout the list shows %q", got)
	}
	if n := eval[int](tb, `document.querySelectorAll('header a[href="/ui/_login"]').length`); n != 1 {
		t.Error("no login link after logout")
	}
	tb.screenshot("logged-out")

	// admin sees everything and may delete
	tb.open(srv.URL + "/ui/_login?next=%2Fui%2Fsecret%2Fapp%3Av1")
	tb.do(chromedp.SendKeys(chromedp.ID("user"), "admin"), chromedp.SendKeys(chromedp.ID("password"), passwords["admin"]))
	tb.click(`form button.primary`)
	if loc := tb.location(); !strings.HasSuffix(loc, "/ui/secret/app:v1") {
		t.Errorf("the login led to %s, not where it was asked to", loc)
	}
	if n := eval[int](tb, `document.querySelectorAll('a.button.danger').length`); n != 1 {
		t.Error("admin is offered no delete")
	}
	tb.screenshot("admin")
	if n := tb.dialogCount(); n != 0 {
		t.Errorf("the pages opened %d dialogs", n)
	}
}
