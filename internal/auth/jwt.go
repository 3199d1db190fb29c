package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Signer signs and verifies the JWTs graft issues, with one key.
type Signer struct {
	key    crypto.Signer
	method jwt.SigningMethod
	// kid names the key in each token's header, so that a token signed by another
	// key is turned down before any signature is checked.
	kid string
	// order is the order of an ECDSA key's curve, nil for other keys: an ECDSA
	// signature (r, s) is as valid as (r, n-s), and only the one with the lower s is
	// issued and accepted, so that a token has one spelling.
	order *big.Int
}

// Method is the JWS algorithm of s: ES256 for the keys graft generates.
func (s *Signer) Method() string { return s.method.Alg() }

// NewSigner returns a signer of key: ECDSA (ES256, ES384, ES512 by curve), RSA of
// at least 2048 bits (RS256) or Ed25519 (EdDSA).
func NewSigner(key crypto.Signer) (*Signer, error) {
	var m jwt.SigningMethod
	var order *big.Int
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			m = lowS{jwt.SigningMethodES256}
		case elliptic.P384():
			m = lowS{jwt.SigningMethodES384}
		case elliptic.P521():
			m = lowS{jwt.SigningMethodES512}
		default:
			return nil, errors.New("token key: an ECDSA key must be on P-256, P-384 or P-521")
		}
		order = k.Curve.Params().N
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, errors.New("token key: an RSA key must have at least 2048 bits")
		}
		m = jwt.SigningMethodRS256
	case ed25519.PrivateKey:
		m = jwt.SigningMethodEdDSA
	default:
		return nil, fmt.Errorf("token key: %T keys are not supported; use ECDSA P-256", key)
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, fmt.Errorf("token key: %w", err)
	}
	sum := sha256.Sum256(der)
	return &Signer{key: key, method: m, kid: base64.RawURLEncoding.EncodeToString(sum[:12]), order: order}, nil
}

// lowS is an ECDSA signing method that signs in the low-S form: of the two valid
// signatures (r, s) and (r, n-s), the one whose s is at most n/2.
type lowS struct{ *jwt.SigningMethodECDSA }

func (m lowS) Sign(signingString string, key any) ([]byte, error) {
	sig, err := m.SigningMethodECDSA.Sign(signingString, key)
	if err != nil {
		return nil, err
	}
	n := key.(*ecdsa.PrivateKey).Curve.Params().N
	h := len(sig) / 2
	s := new(big.Int).SetBytes(sig[h:])
	if !isLowS(s, n) {
		s.Sub(n, s).FillBytes(sig[h:])
	}
	return sig, nil
}

// isLowS reports whether s is at most half the curve order n.
func isLowS(s, n *big.Int) bool {
	return s.Cmp(new(big.Int).Rsh(n, 1)) <= 0
}

// lowSignature reports whether an ECDSA signature in the JWS form (r and s, each
// of half its length) has the low-S form.
func lowSignature(sig []byte, n *big.Int) bool {
	if len(sig) == 0 || len(sig)%2 != 0 {
		return false
	}
	return isLowS(new(big.Int).SetBytes(sig[len(sig)/2:]), n)
}

// LoadSigner reads a PEM private key file: PKCS #8, SEC 1 (EC PRIVATE KEY) or
// PKCS #1 (RSA PRIVATE KEY). Other blocks, such as the EC PARAMETERS openssl writes
// first, are skipped.
func LoadSigner(path string) (*Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("token key: %w", err)
	}
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("token key %s: no PEM private key in the file", path)
		}
		var key any
		switch blk.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(blk.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("token key %s: %w", path, err)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("token key %s: %T cannot sign", path, key)
		}
		return NewSigner(signer)
	}
}

// LoadOrCreateSigner reads the key at path, or generates an ECDSA P-256 key there
// first, readable by its owner only. Two processes starting at once on one data dir
// end up with the same key: the file appears by a link that only one of them wins.
func LoadOrCreateSigner(path string) (s *Signer, created bool, err error) {
	if _, err := os.Stat(path); err == nil {
		s, err := LoadSigner(path)
		return s, false, err
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("token key: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, false, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("token key: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".token-key.*")
	if err != nil {
		return nil, false, fmt.Errorf("token key: %w", err)
	}
	defer os.Remove(tmp.Name())
	// CreateTemp makes the file 0600: the key is never readable by others, not even
	// for a moment.
	if err := pem.Encode(tmp, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		tmp.Close()
		return nil, false, fmt.Errorf("token key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, false, fmt.Errorf("token key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, false, fmt.Errorf("token key: %w", err)
	}
	linkErr := os.Link(tmp.Name(), path)
	if linkErr != nil && !errors.Is(linkErr, fs.ErrExist) {
		return nil, false, fmt.Errorf("token key: %w", linkErr)
	}
	s, err = LoadSigner(path)
	return s, err == nil && linkErr == nil, err
}

// Uses of a token: an access token goes to the registry, a refresh token (docker's
// identity token) only to the token endpoint.
const (
	useAccess  = "access"
	useRefresh = "refresh"
)

// claims are the claims of graft's tokens: the registered ones, the access of the
// docker token specification, and graft's own.
type claims struct {
	jwt.RegisteredClaims
	Access []accessClaim `json:"access,omitempty"`
	Graft  graftClaim    `json:"graft"`
}

type accessClaim struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

type graftClaim struct {
	Kind    string `json:"kind"`
	Use     string `json:"use"`
	Version string `json:"ver,omitempty"`
}

// maxTokenLength bounds what is parsed: graft's tokens are well under 2 KiB unless
// they carry hundreds of scopes.
const maxTokenLength = 64 << 10

// leeway is the clock skew tolerated between the replicas that issue and check tokens.
const leeway = 30 * time.Second

func (s *Signer) sign(c *claims) (string, error) {
	t := jwt.NewWithClaims(s.method, c)
	t.Header["kid"] = s.kid
	return t.SignedString(s.key)
}

var errToken = errors.New("invalid token")

// verify checks a token's signature, algorithm, key, issuer, audience, expiry,
// not-before and issue time, and returns its claims. Every failure is the same
// error: a caller learns nothing about which check its token failed.
func (s *Signer) verify(token, service string, now time.Time) (*claims, error) {
	if len(token) > maxTokenLength {
		return nil, errToken
	}
	var c claims
	_, err := jwt.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		if kid, _ := t.Header["kid"].(string); kid != s.kid {
			return nil, errToken
		}
		if s.order != nil && !lowSignature(t.Signature, s.order) {
			return nil, errToken
		}
		return s.key.Public(), nil
	},
		jwt.WithValidMethods([]string{s.method.Alg()}),
		jwt.WithIssuer(service),
		jwt.WithAudience(service),
		jwt.WithExpirationRequired(),
		jwt.WithNotBeforeRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		// one token, one spelling: a signature re-encoded with other padding bits
		// is not the token that was issued
		jwt.WithStrictDecoding(),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	if err != nil {
		return nil, errToken
	}
	return &c, nil
}
