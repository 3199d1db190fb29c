//go:build unix

package daemon_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/graft-registry/graft/internal/config"
	"github.com/graft-registry/graft/internal/daemon"
	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/registrytest"
)

// A second graft serve on a data directory one serves fails at once and names the
// first; the admin verbs' way in (the stores, gc, tokens) still works beside it.
func TestDataDirLock(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Addr = "127.0.0.1:0"
	cfg.Log.Format = "json"
	logs := &registrytest.LogBuffer{}
	ctx, stop := context.WithCancel(t.Context())
	first := make(chan error, 1)
	go func() { first <- daemon.Run(ctx, &cfg, daemon.NewLogger(logs, &cfg)) }()
	for !strings.Contains(logs.String(), "graft registry listening") {
		select {
		case err := <-first:
			t.Fatalf("the first server stopped: %v\n%s", err, logs)
		case <-time.After(10 * time.Millisecond):
		}
	}

	// The second gives up by itself; the deadline only bounds a test of a server that
	// would start.
	sctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	second := cfg
	err := daemon.Run(sctx, &second, daemon.NewLogger(&registrytest.LogBuffer{}, &second))
	if !errors.Is(err, daemon.ErrDataDirInUse) || !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Errorf("a second server on the data directory: %v, want it in use by pid %d", err, os.Getpid())
	}

	// What gc, token and migrate open works beside the server.
	st, err := daemon.Open(t.Context(), &cfg)
	if err != nil {
		t.Fatalf("opening the stores beside the server: %v", err)
	}
	reg, err := daemon.NewRegistry(st, &cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.GC(t.Context(), daemon.GCOptions(&cfg)); err != nil {
		t.Errorf("gc beside the server: %v", err)
	}
	err = st.Meta.Update(t.Context(), func(tx metastore.Tx) error {
		return tx.CreateToken(t.Context(), &metastore.Token{Name: "ci", Hash: "x", Created: time.Now()})
	})
	if err != nil {
		t.Errorf("creating a token beside the server: %v", err)
	}
	st.Close()

	stop()
	if err := <-first; err != nil {
		t.Fatalf("the first server: %v", err)
	}
	// Once it stopped, the directory is free.
	ctx2, stop2 := context.WithCancel(t.Context())
	again := make(chan error, 1)
	logs2 := &registrytest.LogBuffer{}
	go func() { again <- daemon.Run(ctx2, &cfg, daemon.NewLogger(logs2, &cfg)) }()
	for !strings.Contains(logs2.String(), "graft registry listening") {
		select {
		case err := <-again:
			t.Fatalf("a server after the first stopped: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	stop2()
	if err := <-again; err != nil {
		t.Fatal(err)
	}
}
