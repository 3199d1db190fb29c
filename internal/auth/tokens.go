package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/graft-registry/graft/internal/pattern"
	"strings"
	"time"

	"github.com/graft-registry/graft/internal/metastore"
)

// A repository-scoped token, as ACR has them: a name that works as a user name with
// any client, a secret shown once and stored as a hash in the metadata store (so that
// every replica knows it), and what it may do on which repositories.

// secretPrefix starts every token secret, so that secret scanners can spot a leaked one.
const secretPrefix = "graft_"

// TokenSpec is a token to create.
type TokenSpec struct {
	Name         string
	Repositories []string
	Actions      []string
	// TTL is how long the token works; 0 is forever.
	TTL time.Duration
}

// ErrReservedName is returned for a token named like a user.
var ErrReservedName = errors.New("a user has that name")

// CreateToken stores a new token in meta and returns its secret, which exists nowhere
// else: the store keeps its SHA-256 (the secret is 256 random bits, so a slow hash
// would add nothing but latency to every request it authenticates).
func CreateToken(ctx context.Context, meta metastore.Updater, spec TokenSpec, now time.Time) (string, *metastore.Token, error) {
	if !ValidName(spec.Name) {
		return "", nil, fmt.Errorf("%q is not a valid token name: letters, digits, . _ @ -, starting with a letter or digit", clip(spec.Name))
	}
	if len(spec.Repositories) == 0 {
		return "", nil, errors.New("a token needs at least one repository pattern (--repo)")
	}
	if _, err := pattern.Repositories(spec.Repositories); err != nil {
		return "", nil, err
	}
	actions, err := ParseActions(spec.Actions)
	if err != nil {
		return "", nil, err
	}
	if actions == 0 {
		return "", nil, errors.New("a token needs at least one action (--action pull,push,delete)")
	}
	if spec.TTL < 0 {
		return "", nil, errors.New("a token's lifetime cannot be negative")
	}
	secret, err := newSecret()
	if err != nil {
		return "", nil, err
	}
	tok := &metastore.Token{
		Name:         spec.Name,
		Hash:         hashSecret(secret),
		Repositories: spec.Repositories,
		Actions:      actions.Names(),
		Created:      now.UTC().Truncate(time.Second),
	}
	if spec.TTL > 0 {
		tok.Expires = tok.Created.Add(spec.TTL)
	}
	err = meta.Update(ctx, func(tx metastore.Tx) error { return tx.CreateToken(ctx, tok) })
	if errors.Is(err, metastore.ErrExists) {
		return "", nil, fmt.Errorf("a token named %s exists; revoke it first", spec.Name)
	}
	if err != nil {
		return "", nil, err
	}
	return secret, tok, nil
}

// RevokeToken deletes the token name: from then on, its secret and every access token
// issued to it are refused, on every replica.
func RevokeToken(ctx context.Context, meta metastore.Updater, name string) error {
	err := meta.Update(ctx, func(tx metastore.Tx) error { return tx.DeleteToken(ctx, name) })
	if errors.Is(err, metastore.ErrNotFound) {
		return fmt.Errorf("no token named %s", name)
	}
	return err
}

func newSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return secretPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

const hashPrefix = "sha256:"

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hashPrefix + hex.EncodeToString(sum[:])
}

func secretMatches(hash, secret string) bool {
	if !strings.HasPrefix(hash, hashPrefix) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(hash), []byte(hashSecret(secret))) == 1
}

// tokenIdentity is the identity of a stored token, or false when it cannot be used:
// expired, or stored with patterns or actions this version does not understand.
func tokenIdentity(tok *metastore.Token, now time.Time) (Identity, bool) {
	if !tok.Expires.IsZero() && !now.Before(tok.Expires) {
		return Identity{}, false
	}
	repos, err := pattern.Repositories(tok.Repositories)
	if err != nil {
		return Identity{}, false
	}
	actions, err := ParseActions(tok.Actions)
	if err != nil || actions == 0 {
		return Identity{}, false
	}
	return Identity{
		Kind: Token, Name: tok.Name, repos: repos, actions: actions, expires: tok.Expires,
		version: fingerprint(tok.Hash + "\x00" + tok.Created.UTC().Format(time.RFC3339Nano)),
	}, true
}

// fingerprint names a secret's hash without revealing it: what tokens carry to be
// turned down once the secret changes.
func fingerprint(s string) string {
	sum := sha256.Sum256([]byte("graft identity version\x00" + s))
	return base64.RawURLEncoding.EncodeToString(sum[:9])
}
