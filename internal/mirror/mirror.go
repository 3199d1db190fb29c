// Package mirror serves pull-through mirrors: repositories under a prefix that are
// copies of another registry's, fetched from it when first pulled and served from the
// registry after. A manifest is fetched with what it names left for later; each blob is
// fetched when a client first asks for it, streamed to that client while it is stored,
// and fetched once however many clients ask at once; referrers are asked upstream and
// the answer kept for the mirror's tag TTL. Upstream registries are reached with
// oras-go.
//
// What a mirror stores is the registry's like anything pushed: garbage collection,
// retention, locks and access policies apply to it. Clients may not push to a mirror's
// repositories or delete from them (registry.Options.ReadOnly).
package mirror

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
	"oras.land/oras-go/v2/registry/remote/retry"

	"github.com/graft-registry/graft/internal/manifest"
	"github.com/graft-registry/graft/internal/reference"
	"github.com/graft-registry/graft/internal/registry"
)

// Config is one mirror.
type Config struct {
	// Prefix names the mirror's repositories and ends in a slash: with "hub/",
	// hub/library/alpine is upstream's library/alpine.
	Prefix string
	// Upstream is the URL of the registry mirrored: https://host[:port], or http://
	// for a loopback host.
	Upstream string
	// Credential logs in to the upstream; when empty, the Docker config file of the
	// process names it, if it does.
	Credential auth.Credential
	// TagTTL is how long a tag, and the referrers of a manifest, are served as
	// fetched before the upstream is asked again; DefaultTagTTL when 0.
	TagTTL time.Duration
}

// DefaultTagTTL is the tag TTL of a mirror that sets none.
const DefaultTagTTL = time.Hour

// Validate checks a list of mirrors: each prefix a repository name's start ending in a
// slash, no prefix the start of another, each upstream an https URL of a host or an
// http one of a loopback host.
func Validate(mirrors []Config) error {
	for i, c := range mirrors {
		if !strings.HasSuffix(c.Prefix, "/") || !reference.ValidName(c.Prefix+"x") {
			return fmt.Errorf("mirror %q: the prefix must be the start of a repository name, ending in a slash (\"hub/\")", c.Prefix)
		}
		if _, _, err := parseUpstream(c.Upstream); err != nil {
			return fmt.Errorf("mirror %s: %w", c.Prefix, err)
		}
		if c.TagTTL < 0 {
			return fmt.Errorf("mirror %s: tag-ttl must not be negative", c.Prefix)
		}
		for _, o := range mirrors[:i] {
			if strings.HasPrefix(c.Prefix, o.Prefix) || strings.HasPrefix(o.Prefix, c.Prefix) {
				return fmt.Errorf("mirrors %s and %s overlap: a repository must belong to one mirror", o.Prefix, c.Prefix)
			}
		}
	}
	return nil
}

// parseUpstream returns the host (host[:port]) of an upstream URL and whether it is
// reached over plain HTTP.
func parseUpstream(raw string) (host string, plainHTTP bool, err error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.Trim(u.Path, "/") != "" {
		return "", false, fmt.Errorf("upstream %q must be a URL of a registry: https://host[:port]", raw)
	}
	switch u.Scheme {
	case "https":
		return u.Host, false, nil
	case "http":
		if !loopback(u.Hostname()) {
			return "", false, fmt.Errorf("upstream %q: plain http is allowed for a loopback address only; use https", raw)
		}
		return u.Host, true, nil
	}
	return "", false, fmt.Errorf("upstream %q must be an https:// URL", raw)
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ReadOnly returns what registry.Options.ReadOnly takes: why clients may not change a
// repository of one of mirrors, or "" for a repository of none.
func ReadOnly(mirrors []Config) func(repo string) string {
	if len(mirrors) == 0 {
		return nil
	}
	mirrors = append([]Config(nil), mirrors...)
	return func(repo string) string {
		for _, c := range mirrors {
			if name, ok := strings.CutPrefix(repo, c.Prefix); ok {
				return fmt.Sprintf("repository %s belongs to mirror %s of %s, filled from its %s: clients may pull from it, not push to it or delete from it",
					repo, c.Prefix, c.Upstream, name)
			}
		}
		return ""
	}
}

// Options configure a Set.
type Options struct {
	Logger *slog.Logger
	// Transport carries the requests to upstreams; a clone of
	// http.DefaultTransport when nil.
	Transport http.RoundTripper
	// SpoolDir holds the blobs being fetched, which clients read along while the blob
	// store writes them (os.TempDir() when empty): a disk with room for the largest
	// blobs fetched at once. The files are unlinked as they are created.
	SpoolDir string
}

// Set is the mirrors of a registry.
type Set struct {
	reg      *registry.Registry
	fill     *registry.Filler
	log      *slog.Logger
	mirrors  []*upstream
	metrics  *metrics
	now      func() time.Time
	spoolDir string

	// ctx bounds the fetches that outlive the request that started them: Close ends
	// it.
	ctx    context.Context
	cancel context.CancelFunc

	manifests, referrers singleflight.Group
	blobs                flights
}

// upstream is one mirror, at work.
type upstream struct {
	Config
	host      string
	plainHTTP bool
	client    *auth.Client
	// tags and referrers remember when each tag and each subject's referrers were
	// last found current upstream.
	tags, referrers *checks
	// repos are the clients of the upstream's repositories, kept so that each learns
	// once whether the upstream has the referrers API.
	repos sync.Map // upstream repository name → *remote.Repository
}

// New returns the mirrors of reg. The repositories of mirrors must be read-only to
// clients in reg (ReadOnly).
func New(reg *registry.Registry, mirrors []Config, opts Options) (*Set, error) {
	if err := Validate(mirrors); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	transport := opts.Transport
	if transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.ResponseHeaderTimeout = time.Minute
		transport = t
	}
	// A client waits while the mirror retries: a few short tries, not the minutes a
	// client of its own would spend.
	transport = &retry.Transport{Base: transport, Policy: func() retry.Policy { return retryPolicy }}
	var docker credentials.Store
	s := &Set{reg: reg, fill: reg.Filler(), log: log, metrics: newMetrics(), now: time.Now, spoolDir: opts.SpoolDir}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for _, c := range mirrors {
		up := &upstream{Config: c}
		up.host, up.plainHTTP, _ = parseUpstream(c.Upstream)
		if up.TagTTL == 0 {
			up.TagTTL = DefaultTagTTL
		}
		up.tags, up.referrers = newChecks(up.TagTTL), newChecks(up.TagTTL)
		cred := auth.StaticCredential(up.host, c.Credential)
		if c.Credential == auth.EmptyCredential {
			if docker == nil {
				var err error
				docker, err = credentials.NewStoreFromDocker(credentials.StoreOptions{DetectDefaultNativeStore: true})
				if err != nil {
					return nil, fmt.Errorf("mirror %s: reading the Docker config file for the upstream's credentials: %w", c.Prefix, err)
				}
			}
			cred = credentials.Credential(docker)
		}
		up.client = &auth.Client{
			Client:     &http.Client{Transport: transport},
			Cache:      auth.NewCache(),
			Credential: cred,
		}
		up.client.SetUserAgent("graft-mirror")
		s.mirrors = append(s.mirrors, up)
	}
	return s, nil
}

var retryPolicy = &retry.GenericPolicy{
	Retryable: retry.DefaultPredicate,
	Backoff:   retry.DefaultBackoff,
	MinWait:   200 * time.Millisecond,
	MaxWait:   time.Second,
	MaxRetry:  2,
}

// Close stops the fetches in flight.
func (s *Set) Close() error {
	s.cancel()
	s.blobs.wait()
	return nil
}

// Covers reports whether repo is a repository of one of the mirrors.
func (s *Set) Covers(repo string) bool {
	_, _, ok := s.route(repo)
	return ok
}

// route returns the mirror of repo and the name of repo upstream.
func (s *Set) route(repo string) (*upstream, string, bool) {
	for _, up := range s.mirrors {
		if name, ok := strings.CutPrefix(repo, up.Prefix); ok && name != "" {
			return up, name, true
		}
	}
	return nil, "", false
}

// manifestMediaTypes are the manifests asked of upstreams: those the registry stores.
var manifestMediaTypes = []string{
	ocispec.MediaTypeImageManifest,
	ocispec.MediaTypeImageIndex,
	manifest.MediaTypeDockerManifest,
	manifest.MediaTypeDockerManifestList,
	manifest.MediaTypeArtifact,
}

// repository returns the client of repository name of the upstream.
func (up *upstream) repository(name string) (*remote.Repository, error) {
	if r, ok := up.repos.Load(name); ok {
		return r.(*remote.Repository), nil
	}
	r, err := remote.NewRepository(up.host + "/" + name)
	if err != nil {
		return nil, fmt.Errorf("mirror %s: upstream repository %s: %w", up.Prefix, name, err)
	}
	r.PlainHTTP = up.plainHTTP
	r.Client = up.client
	r.ManifestMediaTypes = manifestMediaTypes
	r.MaxMetadataBytes = manifest.MaxSize
	got, _ := up.repos.LoadOrStore(name, r)
	return got.(*remote.Repository), nil
}

// Collectors are the mirrors' metrics.
func (s *Set) Collectors() []prometheus.Collector { return s.metrics.collectors() }

// detached returns a context for work that runs for every client waiting on it, not for
// the one that started it: it ends with the Set, or after timeout.
func (s *Set) detached(timeout time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, timeout)
}

// fetchTimeout bounds a fetch of a manifest or of referrers.
const fetchTimeout = 2 * time.Minute

// wait returns what ch delivers, or the error of ctx if it ends first.
func wait(ctx context.Context, ch <-chan singleflight.Result) (any, error) {
	select {
	case res := <-ch:
		return res.Val, res.Err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

var errClosed = errors.New("mirror: closed")
