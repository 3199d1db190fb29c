// Package daemon runs the registry: it opens the stores a configuration names, serves
// the API and the web view, reclaims stale uploads, and shuts down gracefully.
package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/graft-registry/graft/internal/accesslog"
	"github.com/graft-registry/graft/internal/auth"
	"github.com/graft-registry/graft/internal/config"
	"github.com/graft-registry/graft/internal/events"
	"github.com/graft-registry/graft/internal/mirror"
	"github.com/graft-registry/graft/internal/registry"
	"github.com/graft-registry/graft/internal/server"
	"github.com/graft-registry/graft/internal/ui"
)

// Run serves the registry cfg describes until ctx ends, then stops accepting
// connections, lets requests in flight finish (up to cfg.Shutdown.Timeout) and closes
// the stores. A request cut off by the timeout never leaves anything half-written
// visible: blobs and manifests become visible only by their final atomic step.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	if embedded(cfg) {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		release, err := lockDataDir(cfg.DataDir)
		if err != nil {
			return err
		}
		defer release()
	}
	st, err := Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	bell := &events.Bell{}
	reg, err := newRegistry(st, cfg, bell.Ring, log)
	if err != nil {
		return err
	}
	authn, err := auth.FromConfig(cfg, st.Meta, log)
	if err != nil {
		return err
	}
	tlsConfig, err := auth.ServerTLS(cfg.TLS)
	if err != nil {
		return err
	}
	mirrors, err := NewMirrors(reg, cfg, log)
	if err != nil {
		return err
	}
	if mirrors != nil {
		// after the server has stopped: the fetches it started end with it
		defer mirrors.Close()
	}

	consumers, err := Consumers(cfg, reg, log)
	if err != nil {
		return err
	}
	var dispatcher *events.Dispatcher
	var reporter server.EventReporter
	if len(consumers) > 0 {
		dispatcher = events.NewDispatcher(st.Meta, consumers, events.Options{Holder: holder(), Keep: cfg.Events.Keep, Bell: bell, Logger: log})
		reporter = dispatcher
	}
	handler, err := Handler(reg, cfg, authn, log, Extras{Events: reporter, Mirrors: mirrors})
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	if err := auth.CheckExposure(cfg.Addr, authn != nil, tlsConfig != nil, cfg.Auth.InsecureAnonymous, log); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	log.Info("graft registry listening", "addr", ln.Addr().String(), "blobs", st.BlobsAt, "metadata", st.MetaAt,
		"cascade", cfg.Delete.Cascade, "auth", authn != nil, "tls", tlsConfig != nil)

	janitorCtx, stopJanitor := context.WithCancel(ctx)
	defer stopJanitor()
	go reg.RunJanitor(janitorCtx, registry.JanitorInterval(RegistryOptions(cfg, log)))
	if cfg.GC.Interval > 0 {
		go reg.RunGC(janitorCtx, cfg.GC.Interval, GCOptions(cfg))
	}
	go reg.RunPulls(janitorCtx, pullFlush)
	if dispatcher != nil {
		go dispatcher.Run(janitorCtx)
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: waiting for requests in flight", "timeout", cfg.Shutdown.Timeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Shutdown.Timeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("requests still in flight at the shutdown timeout were cut off", "err", err)
		srv.Close()
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	if err := reg.FlushPulls(sctx); err != nil {
		log.Error("recording the last pulls failed", "err", err)
	}
	log.Info("stopped")
	return nil
}

// pullFlush is how often the pull times a replica recorded are written to the store.
const pullFlush = 10 * time.Second

// Extras are the parts of graft serve a configuration may leave out: the followers of
// the outbox and the pull-through mirrors; nil for none.
type Extras struct {
	Events  server.EventReporter
	Mirrors *mirror.Set
}

// Handler is what graft serve serves: the API and the web view, behind the access log.
// authn may be nil (access control off).
func Handler(reg *registry.Registry, cfg *config.Config, authn *auth.Authenticator, log *slog.Logger, x Extras) (http.Handler, error) {
	proxies, err := config.ParsePrefixes(cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("trusted-proxies: %w", err)
	}
	opts := server.Options{Logger: log, Auth: authn, Limits: Limits(cfg), Events: x.Events}
	if x.Mirrors != nil {
		opts.Mirror = x.Mirrors
	}
	h := ui.Mount(server.New(reg, opts),
		ui.New(reg, ui.Options{Auth: authn, Logger: log}))
	return accesslog.Handler(h, accesslog.Options{
		Logger:     log,
		ClientAddr: auth.Proxies(proxies).ClientAddr,
		Quiet:      quiet,
		Off:        !cfg.Log.Access,
	}), nil
}

// quiet are the requests that come every few seconds from machines, logged at debug:
// probes and metric scrapes.
func quiet(r *http.Request) bool {
	switch r.URL.Path {
	case server.HealthPath, server.ReadyPath, "/metrics":
		return true
	}
	return false
}

// Limits are the server's limits cfg sets.
func Limits(cfg *config.Config) server.Limits {
	return server.Limits{
		BodyMinBytes:   int64(cfg.Limits.BodyMinBytes),
		BodyWindow:     cfg.Limits.BodyWindow,
		ManifestMemory: int64(cfg.Limits.ManifestMemory),
	}
}
