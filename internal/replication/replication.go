// Package replication copies the graphs of this registry's repositories to another
// registry as they change: an image or index with its referrers, its cosign tag-schema
// signatures and attestations, and what is attached to those, and, when the rule says
// so, the deletes. A Replicator follows the outbox as an events.Handler, one event at a
// time and at least once: every step is idempotent (a copy skips what the destination
// has, a delete ignores what is gone), so an event delivered again does no harm.
//
// The destination is any registry that speaks the distribution spec. One without the
// referrers API gets the referrers' fallback index (a sha256-<hex> tag per subject),
// which oras-go writes when the destination does not acknowledge a subject.
package replication

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"slices"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"
	remoteerr "oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/graft-registry/graft/internal/artifact"
	"github.com/graft-registry/graft/internal/client"
	"github.com/graft-registry/graft/internal/events"
	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/pattern"
	"github.com/graft-registry/graft/internal/registry"
)

// Rule says what goes where.
type Rule struct {
	// Name names the rule in the outbox, the logs and the metrics.
	Name string
	// Destination is the registry's host (host:port), reached over HTTPS unless
	// PlainHTTP.
	Destination string
	PlainHTTP   bool
	// Repositories, when not empty, are the only repositories replicated.
	Repositories pattern.Set
	// Prefix is put before a repository's name at the destination, as a path.
	Prefix string
	// ArtifactTypes, when not empty, are the only artifact types replicated among the
	// referrers and tag-schema artifacts; images and indexes always are.
	ArtifactTypes []string
	// Delete propagates deletes: of manifests with their graphs, of tags, of
	// repositories.
	Delete bool
}

// ParseDestination splits a destination URL (https://host[:port], or http:// for a
// registry without TLS) into the host and whether it is plain HTTP.
func ParseDestination(raw string) (host string, plainHTTP bool, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", false, fmt.Errorf("destination %q: %w", raw, err)
	}
	if u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return "", false, fmt.Errorf("destination %q: want https://host[:port] (or http://), nothing after the host", raw)
	}
	switch u.Scheme {
	case "https":
		return u.Host, false, nil
	case "http":
		return u.Host, true, nil
	}
	return "", false, fmt.Errorf("destination %q: the scheme is https or http", raw)
}

// Replicator replicates by one rule.
type Replicator struct {
	rule Rule
	reg  *registry.Registry
	dst  *client.Options
	log  *slog.Logger
}

// New returns the replicator of rule, reading from reg and writing through dst (its
// credentials and TLS settings; PlainHTTP is the rule's).
func New(reg *registry.Registry, rule Rule, dst *client.Options, log *slog.Logger) *Replicator {
	plain := rule.PlainHTTP
	dst.PlainHTTP = &plain
	if log == nil {
		log = slog.Default()
	}
	return &Replicator{rule: rule, reg: reg, dst: dst, log: log.With("replication", rule.Name)}
}

// Matches reports whether the rule replicates repository repo.
func (p *Replicator) Matches(repo string) bool {
	return len(p.rule.Repositories) == 0 || p.rule.Repositories.Match(repo)
}

// DestinationOf names repository repo at the destination.
func (p *Replicator) DestinationOf(repo string) string {
	if p.rule.Prefix == "" {
		return repo
	}
	return path.Join(p.rule.Prefix, repo)
}

func (p *Replicator) destination(repo string) (*remote.Repository, error) {
	return p.dst.Repository(client.Reference{Registry: p.rule.Destination, Repository: p.DestinationOf(repo)})
}

// Deliver implements events.Handler.
func (p *Replicator) Deliver(ctx context.Context, e metastore.Event) error {
	if !p.Matches(e.Repo) {
		return nil
	}
	var err error
	switch e.Type {
	case events.ManifestPushed:
		var m events.Manifest
		if err := json.Unmarshal(e.Data, &m); err != nil {
			return p.skip(e, fmt.Errorf("event data: %w", err))
		}
		err = p.pushed(ctx, m)
	case events.ManifestDeleted:
		if !p.rule.Delete {
			return nil
		}
		var d events.Deleted
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return p.skip(e, fmt.Errorf("event data: %w", err))
		}
		err = p.deleted(ctx, d)
	case events.TagDeleted:
		if !p.rule.Delete {
			return nil
		}
		var t events.Tag
		if err := json.Unmarshal(e.Data, &t); err != nil {
			return p.skip(e, fmt.Errorf("event data: %w", err))
		}
		err = p.untagged(ctx, t)
	case events.RepositoryDeleted:
		if !p.rule.Delete {
			return nil
		}
		err = p.repositoryDeleted(ctx, e.Repo)
	default:
		// a moved tag comes with the push that moved it
		return nil
	}
	if permanent(err) {
		return p.skip(e, err)
	}
	return err
}

// skip logs an event the destination refuses for good, so that it does not hold up
// every event after it.
func (p *Replicator) skip(e metastore.Event, err error) error {
	p.log.Warn("replication skipped an event the destination refuses", "seq", e.Seq, "type", e.Type, "repo", e.Repo, "err", err)
	return nil
}

// permanent reports whether the destination refused for a reason that asking again
// will not change: a manifest or name it finds invalid, an operation it does not
// support. Authentication, rate limits and server errors are tried again.
func permanent(err error) bool {
	var answer *remoteerr.ErrorResponse
	if !errors.As(err, &answer) {
		return false
	}
	switch answer.StatusCode {
	case http.StatusBadRequest, http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
		return true
	}
	return false
}

// wanted reports whether a manifest of this kind and artifact type is replicated.
func (p *Replicator) wanted(m events.Manifest) bool {
	if len(p.rule.ArtifactTypes) == 0 {
		return true
	}
	switch artifact.Kind(m.Kind) {
	case artifact.Image, artifact.Index:
		if m.Subject == "" {
			return true
		}
	}
	return slices.Contains(p.rule.ArtifactTypes, m.ArtifactType)
}

// pushed copies a pushed manifest with what it references, under its tags. Its
// referrers and tag-schema artifacts come with events of their own; one pushed before
// its subject is copied before it too, as the spec allows.
func (p *Replicator) pushed(ctx context.Context, m events.Manifest) error {
	if !p.wanted(m) {
		return nil
	}
	src := source{reg: p.reg, repo: m.Repository}
	root, err := src.Resolve(ctx, m.Digest.String())
	if errors.Is(err, errdef.ErrNotFound) {
		return nil // deleted since: its delete follows
	}
	if err != nil {
		return err
	}
	dst, err := p.destination(m.Repository)
	if err != nil {
		return err
	}
	tag := ""
	if len(m.Tags) > 0 {
		tag = m.Tags[0]
	}
	if _, err := client.Copy(ctx, src, dst, root, tag, client.CopyOptions{}); err != nil {
		return fmt.Errorf("copying %s@%s to %s: %w", m.Repository, m.Digest, p.rule.Destination, err)
	}
	for _, t := range m.Tags[min(1, len(m.Tags)):] {
		if err := dst.Tag(ctx, root, t); err != nil {
			return fmt.Errorf("tagging %s:%s at %s: %w", m.Repository, t, p.rule.Destination, err)
		}
	}
	return nil
}

// deleted removes a deleted manifest's graph at the destination: what this registry's
// cascade removed, and whatever else hangs under it there.
func (p *Replicator) deleted(ctx context.Context, d events.Deleted) error {
	dst, err := p.destination(d.Repository)
	if err != nil {
		return err
	}
	root, err := dst.Resolve(ctx, d.Digest.String())
	if errors.Is(err, errdef.ErrNotFound) {
		// the root is gone there, perhaps not all of the graph: an earlier try
		// stopped half-way, or the cascade took artifacts in other events' stead
		for _, c := range d.Cascade {
			if err := p.deleteGraph(ctx, dst, ocispec.Descriptor{Digest: c}); err != nil {
				return err
			}
		}
		return nil
	}
	if err != nil {
		return err
	}
	return p.deleteGraph(ctx, dst, root)
}

func (p *Replicator) deleteGraph(ctx context.Context, dst *remote.Repository, root ocispec.Descriptor) error {
	if root.MediaType == "" {
		desc, err := dst.Resolve(ctx, root.Digest.String())
		if errors.Is(err, errdef.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		root = desc
	}
	graph, err := client.Discover(ctx, dst, root, client.DiscoverOptions{})
	if err != nil {
		return fmt.Errorf("finding the graph of %s at %s: %w", root.Digest, p.rule.Destination, err)
	}
	if _, err := client.DeleteGraph(ctx, dst, graph); err != nil {
		return fmt.Errorf("deleting %s at %s: %w", root.Digest, p.rule.Destination, err)
	}
	return nil
}

// untagged removes a tag at the destination if it names the manifest it named here.
func (p *Replicator) untagged(ctx context.Context, t events.Tag) error {
	dst, err := p.destination(t.Repository)
	if err != nil {
		return err
	}
	return client.Untag(ctx, dst, t.Tag, t.Digest)
}

// repositoryDeleted removes every tagged manifest of the repository at the destination,
// with its graph: what a registry without a repository delete can do.
func (p *Replicator) repositoryDeleted(ctx context.Context, repo string) error {
	dst, err := p.destination(repo)
	if err != nil {
		return err
	}
	var tags []string
	err = dst.Tags(ctx, "", func(page []string) error {
		tags = append(tags, page...)
		return nil
	})
	if errors.Is(err, errdef.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listing the tags of %s at %s: %w", p.DestinationOf(repo), p.rule.Destination, err)
	}
	for _, t := range tags {
		desc, err := dst.Resolve(ctx, t)
		if errors.Is(err, errdef.ErrNotFound) {
			continue // gone with a graph deleted before it
		}
		if err != nil {
			return err
		}
		if err := p.deleteGraph(ctx, dst, desc); err != nil {
			return err
		}
	}
	return nil
}

// Repository copies every tagged manifest of repo with its whole graph: what a rule
// added to a registry that has content already starts from. It skips what the
// destination has, so that running it again costs little, and returns how much it
// copied.
func (p *Replicator) Repository(ctx context.Context, repo string, progress func(tag string, r client.CopyResult)) (client.CopyResult, error) {
	var total client.CopyResult
	src := source{reg: p.reg, repo: repo}
	dst, err := p.destination(repo)
	if err != nil {
		return total, err
	}
	last := ""
	for {
		page, err := p.reg.Tags(ctx, repo, last, 1000)
		if err != nil {
			return total, err
		}
		for _, t := range page.Items {
			if isTagSchema(t) {
				continue // comes with its subject's graph
			}
			root, err := src.Resolve(ctx, t)
			if errors.Is(err, errdef.ErrNotFound) {
				continue
			}
			if err != nil {
				return total, err
			}
			r, err := client.Copy(ctx, src, dst, root, t, client.CopyOptions{Recursive: true, ArtifactTypes: p.rule.ArtifactTypes})
			total.Add(r)
			if err != nil {
				return total, fmt.Errorf("copying %s:%s to %s: %w", repo, t, p.rule.Destination, err)
			}
			if progress != nil {
				progress(t, r)
			}
		}
		if !page.More || len(page.Items) == 0 {
			return total, nil
		}
		last = page.Items[len(page.Items)-1]
	}
}

// isTagSchema reports whether tag is one the referrers tag schema or cosign gives an
// artifact of a subject (sha256-<hex>, sha256-<hex>.sig, .att, .sbom): replicated with
// the subject's graph, never on its own.
func isTagSchema(tag string) bool {
	const prefix = "sha256-"
	if len(tag) < len(prefix)+64 || tag[:len(prefix)] != prefix {
		return false
	}
	for _, c := range tag[len(prefix) : len(prefix)+64] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	switch tag[len(prefix)+64:] {
	case "", ".sig", ".att", ".sbom":
		return true
	}
	return false
}
