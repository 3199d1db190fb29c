package auth

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/graft-registry/graft/internal/config"
	"github.com/graft-registry/graft/internal/metastore"
)

// KeyFile is where graft keeps the token signing key it generates, in the data dir.
const KeyFile = "token-signing-key.pem"

// Enabled reports whether cfg turns authentication on: users (an htpasswd file or
// the configuration's), policies, or client certificates.
func Enabled(cfg *config.Config) bool {
	a := cfg.Auth
	return a.Htpasswd != "" || a.Users != nil && len(*a.Users) > 0 ||
		a.Policies != nil && len(*a.Policies) > 0 || cfg.TLS.ClientCA != ""
}

// FromConfig returns the authenticator cfg describes, or nil when cfg turns no
// authentication on. meta holds the repository-scoped tokens.
func FromConfig(cfg *config.Config, meta metastore.TokenReader, log *slog.Logger) (*Authenticator, error) {
	if !Enabled(cfg) {
		return nil, nil
	}
	a := cfg.Auth
	keyPath := a.Token.Key
	var signer *Signer
	var err error
	if keyPath != "" {
		signer, err = LoadSigner(keyPath)
	} else {
		keyPath = filepath.Join(cfg.DataDir, KeyFile)
		var created bool
		if signer, created, err = LoadOrCreateSigner(keyPath); created {
			log.Info("generated a token signing key", "path", keyPath)
		}
		if cfg.Metadata.Postgres.URL != "" {
			log.Warn("auth.token.key is not set: this replica signs tokens with a key of its own, which other replicas refuse; give every replica the same key file")
		}
	}
	if err != nil {
		return nil, err
	}
	users := map[string]string{}
	groups := map[string][]string{}
	if a.Users != nil {
		for _, u := range *a.Users {
			if _, dup := users[u.Name]; dup {
				return nil, fmt.Errorf("auth.users: %s is there twice", u.Name)
			}
			users[u.Name] = u.Password
			if len(u.Groups) > 0 {
				groups[u.Name] = u.Groups
			}
		}
	}
	pc := PolicyConfig{UserGroups: groups}
	if a.Groups != nil {
		pc.Groups = *a.Groups
	}
	if a.Admins != nil {
		pc.Admins = *a.Admins
	}
	if a.Policies != nil {
		for _, p := range *a.Policies {
			pc.Rules = append(pc.Rules, Rule{Repositories: p.Repositories, Pull: p.Pull, Push: p.Push,
				Delete: p.Delete, AnonymousPull: p.AnonymousPull})
		}
	}
	if a.LoginFailures < 0 {
		return nil, errors.New("auth.login-failures must not be negative")
	}
	if a.LoginWindow <= 0 {
		return nil, errors.New("auth.login-window must be positive")
	}
	proxies, err := config.ParsePrefixes(cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("trusted-proxies: %w", err)
	}
	return New(Options{
		Users: users, Htpasswd: a.Htpasswd, Policy: pc, Tokens: meta, Signer: signer,
		Service: a.Token.Service, Realm: a.Token.Realm, TTL: a.Token.TTL, RefreshTTL: a.Token.RefreshTTL,
		LoginFailures: a.LoginFailures, LoginWindow: a.LoginWindow, TrustedProxies: proxies, ClientCerts: cfg.TLS.ClientCA != "", Logger: log,
	})
}

// CheckExposure refuses to let anyone do anything on an address that other machines
// reach: without authentication, graft serve listens on loopback only, unless insecure
// says otherwise. It runs before anything listens, so a refusal never opens a socket.
// It warns of passwords sent in clear text.
func CheckExposure(addr string, authOn, tlsOn, insecure bool, log *slog.Logger) error {
	tcp, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return fmt.Errorf("addr %q: %w", addr, err)
	}
	if tcp.IP != nil && tcp.IP.IsLoopback() {
		return nil
	}
	switch {
	case !authOn && !insecure:
		return fmt.Errorf("refusing to serve %s without authentication: anyone who reaches it could push and delete. "+
			"Turn authentication on (--htpasswd FILE, or auth in the configuration file), listen on 127.0.0.1, "+
			"or say --insecure-anonymous", addr)
	case !authOn:
		log.Warn("serving without authentication on an address other machines may reach (--insecure-anonymous)", "addr", addr)
	case !tlsOn:
		log.Warn("serving plain HTTP with authentication: passwords and tokens travel in clear text; set tls.cert and tls.key, or terminate TLS in front", "addr", addr)
	}
	return nil
}

// ServerTLS returns the TLS configuration of c, or nil for plain HTTP. The certificate
// is read again when its files change, so that a renewed one is served without a
// restart.
func ServerTLS(c config.TLS) (*tls.Config, error) {
	if c.Cert == "" && c.Key == "" {
		if c.ClientCA != "" {
			return nil, errors.New("tls.client-ca needs tls.cert and tls.key: client certificates come with TLS")
		}
		return nil, nil
	}
	if c.Cert == "" || c.Key == "" {
		return nil, errors.New("tls.cert and tls.key go together")
	}
	kp := &keyPair{cert: c.Cert, key: c.Key, checked: time.Now()}
	if err := kp.load(); err != nil {
		return nil, err
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: kp.get}
	if c.ClientCA != "" {
		b, err := os.ReadFile(c.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("tls.client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("tls.client-ca %s: no PEM certificate in it", c.ClientCA)
		}
		tc.ClientCAs = pool
		// Clients without a certificate still log in with passwords and tokens.
		tc.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return tc, nil
}

// certRecheck is how often the certificate's files are looked at for a renewal, at most.
var certRecheck = 10 * time.Second

type keyPair struct {
	cert, key string

	mu      sync.Mutex
	current *tls.Certificate
	stamp   [2]time.Time
	checked time.Time
}

func (k *keyPair) load() error {
	c, err := tls.LoadX509KeyPair(k.cert, k.key)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	k.current = &c
	k.stamp = k.stamps()
	return nil
}

func (k *keyPair) stamps() [2]time.Time {
	var s [2]time.Time
	for i, p := range []string{k.cert, k.key} {
		if fi, err := os.Stat(p); err == nil {
			s[i] = fi.ModTime()
		}
	}
	return s
}

func (k *keyPair) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if now := time.Now(); now.Sub(k.checked) >= certRecheck {
		k.checked = now
		if k.stamps() != k.stamp {
			// a certificate half-renewed (new cert, old key) fails to load: keep
			// serving the old one until both files are in place
			_ = k.load()
		}
	}
	return k.current, nil
}

// ConfiguredUser reports whether cfg has a user called name, in auth.users or the
// htpasswd file: a token may not take a user's name.
func ConfiguredUser(cfg *config.Config, name string) (bool, error) {
	if cfg.Auth.Users != nil {
		for _, u := range *cfg.Auth.Users {
			if u.Name == name {
				return true, nil
			}
		}
	}
	if cfg.Auth.Htpasswd == "" {
		return false, nil
	}
	users, err := ReadHtpasswd(cfg.Auth.Htpasswd)
	if err != nil {
		return false, err
	}
	_, ok := users[name]
	return ok, nil
}
