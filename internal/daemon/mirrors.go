package daemon

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"oras.land/oras-go/v2/registry/remote/auth"

	"github.com/graft-registry/graft/internal/config"
	"github.com/graft-registry/graft/internal/mirror"
	"github.com/graft-registry/graft/internal/registry"
	"github.com/graft-registry/graft/internal/server"
)

var _ server.Mirror = (*mirror.Set)(nil)

// Mirrors compiles the pull-through mirrors of cfg, reading their password files,
// naming the first that is wrong.
func Mirrors(cfg *config.Config) ([]mirror.Config, error) {
	if cfg.Mirrors == nil {
		return nil, nil
	}
	var out []mirror.Config
	for _, c := range *cfg.Mirrors {
		m := mirror.Config{Prefix: c.Prefix, Upstream: c.Upstream, TagTTL: c.TagTTL}
		if cr := c.Credentials; cr != nil {
			if cr.Username == "" || cr.PasswordFile == "" {
				return nil, fmt.Errorf("config: mirror %s: credentials need a username and a password-file", c.Prefix)
			}
			b, err := os.ReadFile(cr.PasswordFile)
			if err != nil {
				return nil, fmt.Errorf("config: mirror %s: %w", c.Prefix, err)
			}
			m.Credential = auth.Credential{Username: cr.Username, Password: strings.TrimRight(string(b), "\r\n")}
		}
		out = append(out, m)
	}
	if err := mirror.Validate(out); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return out, nil
}

// NewMirrors returns the pull-through mirrors of cfg over reg, or nil when cfg has
// none. reg must have been made by NewRegistry from cfg, which makes their
// repositories read-only to clients.
func NewMirrors(reg *registry.Registry, cfg *config.Config, log *slog.Logger) (*mirror.Set, error) {
	list, err := Mirrors(cfg)
	if err != nil || len(list) == 0 {
		return nil, err
	}
	// Blobs being fetched are spooled next to the data, not in a temporary directory
	// that may live in memory.
	spool := SpoolDir(cfg)
	if err := os.MkdirAll(spool, 0o755); err != nil {
		return nil, fmt.Errorf("mirror spool: %w", err)
	}
	return mirror.New(reg, list, mirror.Options{Logger: log, SpoolDir: spool})
}

// SpoolDir is where the mirrors of cfg spool the blobs they are fetching.
func SpoolDir(cfg *config.Config) string { return filepath.Join(cfg.DataDir, "mirror-spool") }
