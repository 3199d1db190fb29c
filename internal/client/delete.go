package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"

	"github.com/opencontainers/go-digest"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/oci"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"
)

// Headers of graft's answer to a manifest DELETE (see internal/server): how many
// manifests its cascade removed besides the one named, and at how many locked ones it
// stopped. The body lists both.
const (
	headerCascadeDeleted = "Graft-Cascade-Deleted"
	headerCascadeLocked  = "Graft-Cascade-Locked"
)

// DeleteResult is what a delete removed and what it had to leave.
type DeleteResult struct {
	// Deleted are the manifests removed, the root among them.
	Deleted []digest.Digest `json:"deleted"`
	// Locked are the manifests the registry refused to delete because they are locked,
	// with what hangs under them.
	Locked []digest.Digest `json:"locked"`
	// ByServer says the registry removed the referrers itself (graft's cascade)
	// rather than the client one by one.
	ByServer bool `json:"byServer"`
}

// DeleteGraph deletes the manifest at graph's root and every artifact under it, with
// the tag-schema tags and fallback indexes that name them. A graft registry cascades
// on its own: one DELETE, and its answer says what went. Any other registry or an OCI
// layout gets one DELETE per manifest in the order of graph.Plan, artifacts before
// their subjects, so that an interrupted delete never leaves an artifact whose subject
// is gone.
func DeleteGraph(ctx context.Context, target Target, graph *Node) (DeleteResult, error) {
	if repo, ok := target.(*remote.Repository); ok && serverCascades(ctx, repo) {
		return deleteOnServer(ctx, repo, graph)
	}
	return deleteBottomUp(ctx, target, graph, DeleteResult{Deleted: []digest.Digest{}, Locked: []digest.Digest{}})
}

func deleteBottomUp(ctx context.Context, target Target, graph *Node, result DeleteResult) (DeleteResult, error) {
	deleter, ok := target.(content.Deleter)
	if !ok {
		return result, fmt.Errorf("%T cannot delete", target)
	}
	for _, step := range graph.Plan() {
		if slices.Contains(result.Deleted, step.Digest) || slices.Contains(result.Locked, step.Digest) {
			continue
		}
		if step.Tag != "" {
			if err := Untag(ctx, target, step.Tag, step.Digest); err != nil {
				return result, fmt.Errorf("deleting tag %s of %s: %w", step.Tag, step.Digest, err)
			}
		}
		err := deleter.Delete(ctx, step.Descriptor)
		if err != nil && !errors.Is(err, errdef.ErrNotFound) {
			return result, fmt.Errorf("deleting %s (%s): %w", step.Digest, artifactTypeOf(step.Descriptor), err)
		}
		result.Deleted = append(result.Deleted, step.Digest)
	}
	return result, nil
}

// Untag deletes tag in target when it still names the manifest d; DeleteGraph does so
// before d goes: a registry may keep the tags of a manifest deleted by digest, which would then name
// nothing. A tag moved since the graph was read names a manifest this delete is not
// about, and stays. A registry that refuses to delete tags (the spec lets it) removes
// them with the manifest, or not at all: the delete goes on either way.
func Untag(ctx context.Context, target Target, tag string, d digest.Digest) error {
	desc, err := target.Resolve(ctx, tag)
	if errors.Is(err, errdef.ErrNotFound) || (err == nil && desc.Digest != d) {
		return nil
	} else if err != nil {
		return err
	}
	switch t := target.(type) {
	case *oci.Store:
		err = t.Untag(ctx, tag)
	case *remote.Repository:
		err = deleteTagOf(ctx, t, tag)
	default:
		return nil // the manifest's delete takes its tags, or nothing can
	}
	var answer *errcode.ErrorResponse
	if errors.As(err, &answer) && (answer.StatusCode == http.StatusNotFound || answer.StatusCode == http.StatusMethodNotAllowed ||
		slices.ContainsFunc(answer.Errors, func(e errcode.Error) bool { return e.Code == errorCodeUnsupported })) {
		return nil
	}
	return err
}

// errorCodeUnsupported is the distribution spec's code for an operation a registry
// does not offer, which oras-go's errcode does not name.
const errorCodeUnsupported = "UNSUPPORTED"

// serverCascades reports whether repo is in a graft registry, whose manifest DELETE
// removes the referrers too. Only graft serves /graft/v1/<repository>.
func serverCascades(ctx context.Context, repo *remote.Repository) bool {
	ctx = auth.AppendRepositoryScope(ctx, repo.Reference, auth.ActionPull)
	scheme := "https"
	if repo.PlainHTTP {
		scheme = "http"
	}
	url := fmt.Sprintf("%s://%s/graft/v1/%s", scheme, repo.Reference.Host(), repo.Reference.Repository)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := repo.Client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var info struct {
		Name string `json:"name"`
	}
	return resp.StatusCode == http.StatusOK &&
		json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&info) == nil &&
		info.Name == repo.Reference.Repository
}

// deleteOnServer deletes the root and reads what graft's cascade removed. What it left
// is then deleted one by one, as anywhere else: everything, from a graft configured
// not to cascade; the tag-schema artifacts, from a graft whose cascade follows only
// subjects.
func deleteOnServer(ctx context.Context, repo *remote.Repository, graph *Node) (DeleteResult, error) {
	rec := &cascadeRecorder{Client: repo.Client}
	repo.Client = rec
	err := repo.Delete(ctx, graph.Descriptor)
	repo.Client = rec.Client
	if err != nil {
		return DeleteResult{}, fmt.Errorf("deleting %s: %w", graph.Digest, err)
	}
	result := DeleteResult{Deleted: []digest.Digest{}, Locked: []digest.Digest{}, ByServer: rec.header.Get(headerCascadeDeleted) != ""}
	if err := json.Unmarshal(rec.body, &result); err != nil || len(result.Deleted) == 0 {
		// an answer without the cascade's body still deleted the root
		result.Deleted = []digest.Digest{graph.Digest}
	}
	if len(result.Locked) > 0 {
		return result, nil
	}
	return deleteBottomUp(ctx, repo, graph, result)
}

// cascadeRecorder keeps the headers and body of the answer to a manifest DELETE, which
// oras-go checks and discards.
type cascadeRecorder struct {
	remote.Client
	mu     sync.Mutex
	header http.Header
	body   []byte
}

func (c *cascadeRecorder) Do(req *http.Request) (*http.Response, error) {
	resp, err := c.Client.Do(req)
	if err != nil || req.Method != http.MethodDelete || resp.StatusCode != http.StatusAccepted {
		return resp, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("reading the answer to DELETE %s: %w", req.URL, err)
	}
	c.mu.Lock()
	c.header, c.body = resp.Header.Clone(), body
	c.mu.Unlock()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}
