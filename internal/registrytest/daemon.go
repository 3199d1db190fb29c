package registrytest

import (
	"io"
	"net/http/httptest"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/graft-registry/graft/internal/auth"
	"github.com/graft-registry/graft/internal/config"
	"github.com/graft-registry/graft/internal/daemon"
	"github.com/graft-registry/graft/internal/registry"
)

// Daemon is what graft serve serves, served in process: daemon.Handler, the API and
// the web view behind the access log, with /metrics, and with access control when the
// configuration turns it on.
type Daemon struct {
	// URL is http://127.0.0.1:PORT.
	URL string
	// Registry is the service behind the handler.
	Registry *registry.Registry
	// Config is the configuration it was opened with.
	Config *config.Config
}

// StartDaemon serves daemon.Handler until the test ends, on the default configuration
// with a fresh data directory changed by each of configure, and logging to logs as
// graft serve logs (daemon.NewLogger).
func StartDaemon(t testing.TB, logs io.Writer, configure ...func(*config.Config)) *Daemon {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	for _, f := range configure {
		f(&cfg)
	}
	log := daemon.NewLogger(logs, &cfg)
	st, err := daemon.Open(t.Context(), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	authn, err := auth.FromConfig(&cfg, st.Meta, log)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := daemon.NewRegistry(st, &cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	h, err := daemon.Handler(reg, &cfg, authn, log, daemon.Extras{})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return &Daemon{URL: hs.URL, Registry: reg, Config: &cfg}
}

// Admin makes name, with password, the one user of a configuration, and an admin:
// access control on.
func Admin(name, password string) func(*config.Config) {
	return func(cfg *config.Config) {
		hash, _ := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
		cfg.Auth.Users = &[]config.AuthUser{{Name: name, Password: string(hash)}}
		cfg.Auth.Admins = &[]string{name}
	}
}
