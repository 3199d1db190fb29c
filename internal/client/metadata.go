package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content/oci"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"
)

// DeleteTag deletes the tag ref names, and only the tag: the manifest stays, with its
// other tags and its referrers. It returns the descriptor of the manifest the tag
// named, so that the tag can be put back. A registry gets DELETE
// /v2/<name>/manifests/<tag>, which the distribution spec allows registries to
// refuse.
func DeleteTag(ctx context.Context, target Target, ref Reference) (ocispec.Descriptor, error) {
	if _, ok := ref.Digest(); ok {
		return ocispec.Descriptor{}, &UsageError{Err: fmt.Errorf("%s names a digest, not a tag: to delete the manifest, use graft manifest delete", ref)}
	}
	if ref.Tag() == "" {
		return ocispec.Descriptor{}, &UsageError{Err: fmt.Errorf("%s names no tag: want %s:TAG", ref, ref)}
	}
	desc, err := Resolve(ctx, target, ref)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	switch t := target.(type) {
	case *oci.Store:
		err = t.Untag(ctx, ref.Tag())
	case *remote.Repository:
		err = deleteTagOf(ctx, t, ref.Tag())
	default:
		err = fmt.Errorf("%T cannot delete tags", target)
	}
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("deleting tag %s: %w", ref, err)
	}
	return desc, nil
}

// deleteTagOf sends DELETE /v2/<name>/manifests/<tag>.
func deleteTagOf(ctx context.Context, repo *remote.Repository, tag string) error {
	ctx = auth.AppendRepositoryScope(ctx, repo.Reference, auth.ActionDelete)
	resp, err := send(ctx, repo, http.MethodDelete, "/v2/"+repo.Reference.Repository+"/manifests/"+tag, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusOK {
		return answerError(resp)
	}
	return nil
}

// Operations name what a lock refuses, or an unlock allows again: graft's changeable
// attributes of a repository or manifest (writeEnabled, deleteEnabled, readEnabled,
// listEnabled).
type Operations struct {
	Write, Delete, Read, List bool
}

// Attributes are the changeable attributes of a repository or manifest: what graft
// lets anyone do with it.
type Attributes struct {
	DeleteEnabled bool `json:"deleteEnabled"`
	WriteEnabled  bool `json:"writeEnabled"`
	ReadEnabled   bool `json:"readEnabled"`
	ListEnabled   bool `json:"listEnabled"`
}

// Locked is a repository or manifest as a lock or unlock left it.
type Locked struct {
	// Reference is the repository, or the manifest by digest.
	Reference  string     `json:"reference"`
	Attributes Attributes `json:"changeableAttributes"`
}

// Lock refuses ops on the repository ref names or, when it names a tag or digest, on
// that manifest, with graft's metadata API (PATCH /graft/v1/<name> and
// /graft/v1/<name>/_manifests/<reference>). A registry without it answers
// ErrNoMetadataAPI.
func Lock(ctx context.Context, repo *remote.Repository, ref Reference, ops Operations) (Locked, error) {
	return setAttributes(ctx, repo, ref, ops, false)
}

// Unlock allows ops again on what ref names, as Lock refuses them.
func Unlock(ctx context.Context, repo *remote.Repository, ref Reference, ops Operations) (Locked, error) {
	return setAttributes(ctx, repo, ref, ops, true)
}

func setAttributes(ctx context.Context, repo *remote.Repository, ref Reference, ops Operations, enabled bool) (Locked, error) {
	patch := map[string]bool{}
	for name, set := range map[string]bool{"writeEnabled": ops.Write, "deleteEnabled": ops.Delete, "readEnabled": ops.Read, "listEnabled": ops.List} {
		if set {
			patch[name] = enabled
		}
	}
	if len(patch) == 0 {
		return Locked{}, &UsageError{Err: errors.New("name an operation: --write, --delete, --read or --list")}
	}
	body, err := json.Marshal(patch)
	if err != nil {
		return Locked{}, err
	}
	path := "/graft/v1/" + repo.Reference.Repository
	if ref.Reference != "" {
		path += "/_manifests/" + url.PathEscape(ref.Reference)
	}
	// graft asks for the delete right to change a lock
	ctx = auth.AppendRepositoryScope(ctx, repo.Reference, auth.ActionDelete)
	resp, err := send(ctx, repo, http.MethodPatch, path, body)
	if err != nil {
		return Locked{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		err := answerError(resp)
		var answer *errcode.ErrorResponse
		if errors.As(err, &answer) && len(answer.Errors) == 0 &&
			(resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed) {
			// no spec error: the path is no endpoint there, not an unknown repository
			return Locked{}, fmt.Errorf("%s: %w", repo.Reference.Registry, ErrNoMetadataAPI)
		}
		return Locked{}, err
	}
	var answer struct {
		Digest               string     `json:"digest"`
		ChangeableAttributes Attributes `json:"changeableAttributes"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&answer); err != nil {
		return Locked{}, fmt.Errorf("reading the answer to PATCH %s: %w", path, err)
	}
	locked := Locked{Reference: ref.Repo().String(), Attributes: answer.ChangeableAttributes}
	if answer.Digest != "" {
		locked.Reference = ref.WithReference(answer.Digest).String()
	}
	return locked, nil
}

// RepositoryDeleted is what DeleteRepository removed, as graft answers it.
type RepositoryDeleted struct {
	Name      string `json:"name"`
	Manifests int64  `json:"manifests"`
	Tags      int64  `json:"tags"`
	Size      int64  `json:"size"`
}

// DeleteRepository deletes repository repo with everything in it, with graft's
// metadata API (DELETE /graft/v1/<name>). A registry without it answers
// ErrNoMetadataAPI.
func DeleteRepository(ctx context.Context, repo *remote.Repository) (RepositoryDeleted, error) {
	path := "/graft/v1/" + repo.Reference.Repository
	ctx = auth.AppendRepositoryScope(ctx, repo.Reference, auth.ActionDelete)
	resp, err := send(ctx, repo, http.MethodDelete, path, nil)
	if err != nil {
		return RepositoryDeleted{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		err := answerError(resp)
		var answer *errcode.ErrorResponse
		if errors.As(err, &answer) && len(answer.Errors) == 0 &&
			(resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed) {
			return RepositoryDeleted{}, fmt.Errorf("%s: %w", repo.Reference.Registry, ErrNoMetadataAPI)
		}
		return RepositoryDeleted{}, err
	}
	var deleted RepositoryDeleted
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&deleted); err != nil {
		return RepositoryDeleted{}, fmt.Errorf("reading the answer to DELETE %s: %w", path, err)
	}
	return deleted, nil
}

// send sends a request to path in repo's registry, with repo's client (and so its
// credentials); an answer of any status is no error.
func send(ctx context.Context, repo *remote.Repository, method, path string, body []byte) (*http.Response, error) {
	scheme := "https"
	if repo.PlainHTTP {
		scheme = "http"
	}
	u := scheme + "://" + repo.Reference.Host() + path
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return repo.Client.Do(req)
}

// answerError is the error of an answer the request did not want, as oras-go gives
// it: the request, the status and the registry's spec errors, if any.
func answerError(resp *http.Response) error {
	var body struct {
		Errors errcode.Errors `json:"errors"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_ = json.Unmarshal(b, &body) // an answer without spec errors is still an error
	return &errcode.ErrorResponse{
		Method:     resp.Request.Method,
		URL:        resp.Request.URL,
		StatusCode: resp.StatusCode,
		Errors:     body.Errors,
	}
}
