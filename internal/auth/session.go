package auth

import (
	"context"
	"time"
)

// A session of the web view is a token of its own use, carried in a cookie: neither
// an access token (the registry turns it down) nor a refresh token (the token
// endpoint does), so that a cookie is good for the web view alone. Like every token
// graft issues it names the identity's secret, so a password change or a revoked
// repository token ends the sessions too, on every replica.

const useSession = "session"

// SessionTTL is how long a web view session lasts.
const SessionTTL = 12 * time.Hour

// IssueSession returns a session token of id.
func (a *Authenticator) IssueSession(id Identity) (*Issued, error) {
	now := a.now()
	exp := now.Add(SessionTTL)
	if id.Kind == Token && !id.expires.IsZero() && id.expires.Before(exp) {
		exp = id.expires
	}
	tok, err := a.signer.sign(a.claims(id, useSession, now, exp))
	if err != nil {
		return nil, err
	}
	return &Issued{Token: tok, IssuedAt: now, Expires: exp}, nil
}

// Session returns the identity a session token was issued to, if it still stands.
func (a *Authenticator) Session(ctx context.Context, token string) (Identity, error) {
	c, err := a.signer.verify(token, a.service, a.now())
	if err != nil || c.Graft.Use != useSession {
		return Identity{}, ErrBadCredentials
	}
	return a.resolve(ctx, c)
}
