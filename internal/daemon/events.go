package daemon

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"oras.land/oras-go/v2/registry/remote/auth"

	"github.com/graft-registry/graft/internal/client"
	"github.com/graft-registry/graft/internal/config"
	"github.com/graft-registry/graft/internal/events"
	"github.com/graft-registry/graft/internal/pattern"
	"github.com/graft-registry/graft/internal/registry"
	"github.com/graft-registry/graft/internal/replication"
	"github.com/graft-registry/graft/internal/webhook"
)

// followed reports whether anything follows the outbox: only then does the registry
// write events.
func followed(cfg *config.Config) bool {
	return cfg.Events.Webhooks != nil && len(*cfg.Events.Webhooks) > 0 ||
		cfg.Replication != nil && len(*cfg.Replication) > 0
}

// Consumers returns the followers of the outbox cfg configures: its webhooks
// ("webhook:<name>") and replication rules ("replication:<name>"), reading from reg.
func Consumers(cfg *config.Config, reg *registry.Registry, log *slog.Logger) ([]events.Consumer, error) {
	var out []events.Consumer
	seen := map[string]bool{}
	add := func(name string, h events.Handler) error {
		if seen[name] {
			return fmt.Errorf("%s is configured twice: give each a name of its own", name)
		}
		seen[name] = true
		out = append(out, events.Consumer{Name: name, Handler: h})
		return nil
	}
	if cfg.Events.Webhooks != nil {
		source := cfg.Events.Source
		if source == "" {
			host, _ := os.Hostname()
			source = "graft://" + host
		}
		for i, w := range *cfg.Events.Webhooks {
			h, err := Webhook(w, source)
			if err != nil {
				return nil, fmt.Errorf("events.webhooks[%d]: %w", i, err)
			}
			if err := add("webhook:"+cmp.Or(w.Name, w.URL), h); err != nil {
				return nil, err
			}
		}
	}
	if cfg.Replication != nil {
		for i, r := range *cfg.Replication {
			p, err := Replicator(r, reg, log)
			if err != nil {
				return nil, fmt.Errorf("replication[%d]: %w", i, err)
			}
			if err := add("replication:"+r.Name, p); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// Webhook returns the receiver w configures.
func Webhook(w config.Webhook, source string) (*webhook.Webhook, error) {
	if !strings.HasPrefix(w.URL, "https://") && !strings.HasPrefix(w.URL, "http://") {
		return nil, fmt.Errorf("url %q: want an http:// or https:// URL", w.URL)
	}
	repos, err := pattern.Repositories(w.Repositories)
	if err != nil {
		return nil, fmt.Errorf("repositories: %w", err)
	}
	h := &webhook.Webhook{URL: w.URL, Repositories: repos, Header: http.Header{}, Source: source}
	for _, a := range w.Actions {
		t, ok := events.Actions[a]
		if !ok {
			return nil, fmt.Errorf("actions: %q is none of push, delete, tag, untag, repository-delete", a)
		}
		h.Types = append(h.Types, t)
	}
	for k, v := range w.Headers {
		h.Header.Set(k, v)
	}
	switch {
	case w.Secret != "" && w.SecretFile != "":
		return nil, fmt.Errorf("secret and secret-file: set one")
	case w.Secret != "":
		h.Secret = []byte(w.Secret)
	case w.SecretFile != "":
		b, err := os.ReadFile(w.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("secret-file: %w", err)
		}
		h.Secret = []byte(strings.TrimSpace(string(b)))
	}
	return h, nil
}

// Replicator returns the replicator rule r configures, reading from reg.
func Replicator(r config.ReplicationRule, reg *registry.Registry, log *slog.Logger) (*replication.Replicator, error) {
	if r.Name == "" {
		return nil, fmt.Errorf("a replication rule needs a name: it keeps its place in the outbox by it")
	}
	host, plain, err := replication.ParseDestination(r.URL)
	if err != nil {
		return nil, fmt.Errorf("rule %s: %w", r.Name, err)
	}
	repos, err := pattern.Repositories(r.Repositories)
	if err != nil {
		return nil, fmt.Errorf("rule %s: repositories: %w", r.Name, err)
	}
	opts := &client.Options{UserAgent: "graft-replication"}
	if c := r.Credentials; c != nil {
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("rule %s: credentials: %w", r.Name, err)
		}
		cred := auth.Credential{Username: c.Username, Password: strings.TrimSpace(string(b))}
		opts.Credential = auth.StaticCredential(host, cred)
	}
	return replication.New(reg, replication.Rule{
		Name: r.Name, Destination: host, PlainHTTP: plain, Repositories: repos,
		Prefix: strings.Trim(r.Prefix, "/"), ArtifactTypes: r.ArtifactTypes, Delete: r.Delete,
	}, opts, log), nil
}

// holder names this process in the consumers' leases.
func holder() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	rand.Read(b)
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b))
}
