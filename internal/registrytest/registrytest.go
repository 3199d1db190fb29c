// Package registrytest serves a registry in process for tests: the real HTTP server,
// registry service and stores (blobs in a temporary directory; metadata in SQLite
// beside them, or in a fresh PostgreSQL database), opened and wired by the code graft
// serve runs, behind an httptest server on a loopback port. Nothing is mocked.
//
// What needs a process of its own (a kill, a restart, real clients, replicas) is
// graftest's.
package registrytest

import (
	"bytes"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/graft-registry/graft/internal/apitest"
	"github.com/graft-registry/graft/internal/config"
	"github.com/graft-registry/graft/internal/daemon"
	"github.com/graft-registry/graft/internal/registry"
	"github.com/graft-registry/graft/internal/scaletest"
	"github.com/graft-registry/graft/internal/server"
)

// Store is a metadata store a registry runs on.
type Store string

const (
	// SQLite keeps the metadata in the data directory: the embedded deployment.
	SQLite Store = "sqlite"
	// Postgres keeps it in a database of the test's own on the PostgreSQL that
	// GRAFT_TEST_POSTGRES_URL names; without it the test is skipped.
	Postgres Store = "postgres"
)

// Stores are the metadata stores graft runs on; a protocol test runs against each.
var Stores = []Store{SQLite, Postgres}

// Server is a registry served in process, and a client of its API.
type Server struct {
	*apitest.Client
	Store Store
	// Registry is the service behind the server, for what the API does not reach
	// (upload expiry).
	Registry *registry.Registry
	// Stores are the stores it runs on; a test may close them to see how the server
	// fails.
	Stores *daemon.Stores
	// Config is the configuration the server was opened with.
	Config *config.Config
	log    *LogBuffer
}

// Start serves a registry on store until the test ends, with the default
// configuration changed by each of configure. Its log is shown when the test fails.
func Start(t testing.TB, store Store, configure ...func(*config.Config)) *Server {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	if store == Postgres {
		cfg.Metadata.Postgres.URL = scaletest.NewPostgres(t)
	}
	for _, f := range configure {
		f(&cfg)
	}
	logs := &LogBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	st, err := daemon.Open(t.Context(), &cfg)
	if err != nil {
		t.Fatalf("opening the stores of a %s registry: %v", store, err)
	}
	reg, err := daemon.NewRegistry(st, &cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(server.New(reg, server.Options{Logger: log}))
	t.Cleanup(func() {
		hs.Close()
		if err := st.Close(); err != nil {
			t.Errorf("closing the stores: %v", err)
		}
		if t.Failed() {
			t.Logf("registry log:\n%s", logs.String())
		}
	})
	return &Server{Client: apitest.NewClient(hs.URL), Store: store, Registry: reg, Stores: st, Config: &cfg, log: logs}
}

// Each runs test against a registry on each store, as parallel subtests named after
// the stores.
func Each(t *testing.T, test func(t *testing.T, srv *Server), configure ...func(*config.Config)) {
	t.Helper()
	for _, store := range Stores {
		t.Run(string(store), func(t *testing.T) {
			t.Parallel()
			test(t, Start(t, store, configure...))
		})
	}
}

// Log is what the registry logged so far, as JSON lines.
func (s *Server) Log() string { return s.log.String() }

// LogBuffer keeps a log that requests in flight write to while a test reads it.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
