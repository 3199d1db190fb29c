package auth

import (
	"context"
	"errors"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestSessions: a session token names its identity for SessionTTL, works nowhere
// else, and ends with its identity's password or repository token.
func TestSessions(t *testing.T) {
	f := newFixture(t, teamPolicy)
	ctx := context.Background()
	bob := f.mustLogin(t, "bob", "bob-password")
	s, err := f.a.IssueSession(bob)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Expires.Equal(f.now.Add(SessionTTL)) {
		t.Errorf("a session expires at %v, want %v", s.Expires, f.now.Add(SessionTTL))
	}
	id, err := f.a.Session(ctx, s.Token)
	if err != nil || id.Kind != User || id.Name != "bob" {
		t.Fatalf("session: %+v, %v", id, err)
	}
	if got := f.a.Policy().Allowed(id, "team/app"); got != Pull|Push {
		t.Errorf("bob's session on team/app: %v", got)
	}

	// a session is neither an access token nor a refresh token, nor they a session
	if _, err := f.bearer(s.Token); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("a session was taken as an access token: %v", err)
	}
	if _, err := f.a.Refresh(ctx, s.Token); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("a session was taken as a refresh token: %v", err)
	}
	access, _ := f.a.IssueAccess(bob, nil)
	refresh, _ := f.a.IssueRefresh(bob)
	for name, tok := range map[string]string{"access": access.Token, "refresh": refresh, "garbage": "x.y.z"} {
		if _, err := f.a.Session(ctx, tok); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("a %s token was taken as a session: %v", name, err)
		}
	}

	// it ends on time, and with a password change
	f.now = f.now.Add(SessionTTL + time.Minute)
	if _, err := f.a.Session(ctx, s.Token); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("an expired session: %v", err)
	}
	s, _ = f.a.IssueSession(bob)
	if _, err := SetPassword(f.htpasswd, "bob", "new-password", bcrypt.MinCost); err != nil {
		t.Fatal(err)
	}
	f.a.users.mu.Lock()
	f.a.users.checked = time.Time{}
	f.a.users.mu.Unlock()
	if _, err := f.a.Session(ctx, s.Token); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("a session from before a password change: %v", err)
	}

	// a repository token's session ends no later than the token, and when it is revoked
	secret, _, err := CreateToken(ctx, f.meta, TokenSpec{Name: "ci", Repositories: []string{"team/*"},
		Actions: []string{"pull"}, TTL: time.Hour}, f.now)
	if err != nil {
		t.Fatal(err)
	}
	ci := f.mustLogin(t, "ci", secret)
	s, _ = f.a.IssueSession(ci)
	if want := f.now.Add(time.Hour); !s.Expires.Equal(want) {
		t.Errorf("a token's session expires at %v, want %v", s.Expires, want)
	}
	if id, err := f.a.Session(ctx, s.Token); err != nil || id.Kind != Token || f.a.Policy().Allowed(id, "team/app") != Pull {
		t.Fatalf("token session: %+v, %v", id, err)
	}
	if err := RevokeToken(ctx, f.meta, "ci"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.Session(ctx, s.Token); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("a session of a revoked token: %v", err)
	}
}
