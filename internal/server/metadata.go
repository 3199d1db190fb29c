package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/graft-registry/graft/internal/artifact"
	"github.com/graft-registry/graft/internal/errcode"
	"github.com/graft-registry/graft/internal/events"
	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/registry"
)

// The metadata API, under /graft/v1/: what is in a registry, tagged and untagged, as
// `az acr manifest list-metadata` shows it, and the changeable attributes (locks) of
// repositories and manifests.

type attributesJSON struct {
	DeleteEnabled bool `json:"deleteEnabled"`
	WriteEnabled  bool `json:"writeEnabled"`
	ReadEnabled   bool `json:"readEnabled"`
	ListEnabled   bool `json:"listEnabled"`
}

func attributes(a metastore.Attributes) attributesJSON {
	return attributesJSON{a.DeleteEnabled, a.WriteEnabled, a.ReadEnabled, a.ListEnabled}
}

type repositoryJSON struct {
	Name                 string         `json:"name"`
	ManifestCount        int64          `json:"manifestCount"`
	TagCount             int64          `json:"tagCount"`
	Size                 int64          `json:"size"`
	CreatedTime          time.Time      `json:"createdTime"`
	LastUpdateTime       time.Time      `json:"lastUpdateTime"`
	ChangeableAttributes attributesJSON `json:"changeableAttributes"`
}

func repository(rp *metastore.Repository) repositoryJSON {
	return repositoryJSON{
		Name: rp.Name, ManifestCount: rp.ManifestCount, TagCount: rp.TagCount, Size: rp.Size,
		CreatedTime: rp.Created, LastUpdateTime: rp.Updated, ChangeableAttributes: attributes(rp.Attributes),
	}
}

type platformJSON struct {
	OS           string   `json:"os"`
	Architecture string   `json:"architecture"`
	Variant      string   `json:"variant,omitempty"`
	OSVersion    string   `json:"osVersion,omitempty"`
	OSFeatures   []string `json:"osFeatures,omitempty"`
}

type manifestJSON struct {
	Digest               string           `json:"digest"`
	MediaType            string           `json:"mediaType"`
	ConfigMediaType      string           `json:"configMediaType,omitempty"`
	ArtifactType         string           `json:"artifactType,omitempty"`
	Size                 int64            `json:"size"`
	TotalSize            int64            `json:"totalSize"`
	Platform             *platformJSON    `json:"platform,omitempty"`
	Tags                 []string         `json:"tags"`
	Kind                 string           `json:"kind"`
	Subject              string           `json:"subject,omitempty"`
	Edge                 registry.Edge    `json:"edge,omitempty"`
	Artifacts            map[string]int64 `json:"artifacts"`
	Signed               bool             `json:"signed"`
	LastPulledTime       *time.Time       `json:"lastPulledTime,omitempty"`
	CreatedTime          time.Time        `json:"createdTime"`
	LastUpdateTime       time.Time        `json:"lastUpdateTime"`
	ChangeableAttributes attributesJSON   `json:"changeableAttributes"`
}

func manifestInfo(m *registry.ManifestInfo) manifestJSON {
	out := manifestJSON{
		Digest: m.Digest.String(), MediaType: m.MediaType, ConfigMediaType: m.ConfigMediaType,
		ArtifactType: m.ArtifactType, Size: m.Size, TotalSize: m.TotalSize, Tags: m.Tags,
		Kind: m.Kind, Artifacts: m.Artifacts, Signed: m.Signed(),
		CreatedTime: m.Created, LastUpdateTime: m.Updated, ChangeableAttributes: attributes(m.Attributes),
	}
	out.Subject, out.Edge = m.ArtifactOf()
	if !m.LastPulled.IsZero() {
		out.LastPulledTime = &m.LastPulled
	}
	if out.Tags == nil {
		out.Tags = []string{}
	}
	if out.Artifacts == nil {
		out.Artifacts = map[string]int64{}
	}
	if p := m.Platform; p != nil {
		out.Platform = &platformJSON{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant,
			OSVersion: p.OSVersion, OSFeatures: p.OSFeatures}
	}
	return out
}

func (s *Server) metaRepositories(w http.ResponseWriter, r *http.Request, _ route) error {
	q := r.URL.Query()
	n, err := registry.PageSize(q.Get("n"))
	if err != nil {
		return err
	}
	repos, more, err := s.repositoryList(r, q.Get("last"), n)
	if err != nil {
		return err
	}
	out := struct {
		Repositories []repositoryJSON `json:"repositories"`
	}{Repositories: make([]repositoryJSON, len(repos))}
	for i := range repos {
		out.Repositories[i] = repository(&repos[i])
	}
	if more {
		setLink(w, metaPrefix+"_repositories", url.Values{"n": {strconv.Itoa(n)}, "last": {repos[len(repos)-1].Name}})
	}
	s.writeJSON(w, r, http.StatusOK, "application/json", out)
	return nil
}

// metaEvents reports the followers of the outbox: how far behind each is, and how its
// deliveries went.
func (s *Server) metaEvents(w http.ResponseWriter, r *http.Request, _ route) error {
	out := struct {
		Consumers []events.Status `json:"consumers"`
	}{Consumers: []events.Status{}}
	if s.events != nil {
		st, err := s.events.Status(r.Context())
		if err != nil {
			return fmt.Errorf("events status: %w", err)
		}
		out.Consumers = st
	}
	s.writeJSON(w, r, http.StatusOK, "application/json", out)
	return nil
}

func (s *Server) metaRepository(w http.ResponseWriter, r *http.Request, rt route) error {
	rp, err := s.reg.Repository(r.Context(), rt.name)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, "application/json", repository(rp))
	return nil
}

func (s *Server) patchRepository(w http.ResponseWriter, r *http.Request, rt route) error {
	p, err := readPatch(r)
	if err != nil {
		return err
	}
	rp, err := s.reg.UpdateRepository(r.Context(), rt.name, p)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, "application/json", repository(rp))
	return nil
}

// deleteRepository answers DELETE /graft/v1/<name>: the repository with everything in
// it, and what it held.
func (s *Server) deleteRepository(w http.ResponseWriter, r *http.Request, rt route) error {
	deleted, err := s.reg.DeleteRepository(r.Context(), rt.name)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, "application/json", deleted)
	return nil
}

func (s *Server) metaManifests(w http.ResponseWriter, r *http.Request, rt route) error {
	q := r.URL.Query()
	n, err := registry.PageSize(q.Get("n"))
	if err != nil {
		return err
	}
	f := metastore.Filter{ArtifactType: q.Get("artifactType")}
	if f.Tagged, err = boolParam(q, "tagged"); err != nil {
		return err
	}
	if f.HasSubject, err = boolParam(q, "hasSubject"); err != nil {
		return err
	}
	if k := q.Get("kind"); k != "" {
		if !artifact.Kind(k).Valid() {
			return errBadRequest("kind must be one of %v", artifact.Kinds)
		}
		f.Kind = k
	}
	switch registry.Edge(q.Get("edge")) {
	case "":
	case registry.EdgeSubject:
		yes := true
		if f.HasSubject != nil && !*f.HasSubject {
			return errBadRequest("edge=subject and hasSubject=false select nothing together")
		}
		f.HasSubject = &yes
	case registry.EdgeTag:
		f.TagEdge = true
	default:
		return errBadRequest("edge must be %s or %s", registry.EdgeSubject, registry.EdgeTag)
	}
	list, more, err := s.reg.ManifestList(r.Context(), rt.name, f, q.Get("last"), n)
	if err != nil {
		return err
	}
	out := struct {
		Repository string         `json:"repository"`
		Manifests  []manifestJSON `json:"manifests"`
	}{Repository: rt.name, Manifests: make([]manifestJSON, len(list))}
	for i := range list {
		out.Manifests[i] = manifestInfo(&list[i])
	}
	if more {
		next := url.Values{}
		for k, v := range q {
			next[k] = v
		}
		next.Set("n", strconv.Itoa(n))
		next.Set("last", list[len(list)-1].Digest.String())
		setLink(w, metaPrefix+rt.name+"/_manifests", next)
	}
	s.writeJSON(w, r, http.StatusOK, "application/json", out)
	return nil
}

func (s *Server) metaManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	m, err := s.reg.ManifestInfo(r.Context(), rt.name, rt.ref)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, "application/json", manifestInfo(m))
	return nil
}

func (s *Server) patchManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	p, err := readPatch(r)
	if err != nil {
		return err
	}
	m, err := s.reg.UpdateManifest(r.Context(), rt.name, rt.ref, p)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, "application/json", manifestInfo(m))
	return nil
}

func errBadRequest(format string, args ...any) error {
	return errcode.New(errcode.Unsupported, format, args...).WithStatus(http.StatusBadRequest)
}

// readPatch reads a body of changeable attributes: {"writeEnabled": false, ...}. It is
// strict where encoding/json is lenient: names match exactly, values are true or false
// (not null), and nothing follows the object.
func readPatch(r *http.Request) (registry.AttributesPatch, error) {
	var p registry.AttributesPatch
	bad := errBadRequest("the body must be a JSON object of deleteEnabled, writeEnabled, readEnabled and listEnabled booleans")
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		return p, bad
	}
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&fields); err != nil || fields == nil {
		return p, bad
	}
	if len(bytes.TrimLeft(body[dec.InputOffset():], " \t\r\n")) > 0 {
		return p, errBadRequest("trailing data after the JSON object")
	}
	dst := map[string]**bool{
		"deleteEnabled": &p.DeleteEnabled, "writeEnabled": &p.WriteEnabled,
		"readEnabled": &p.ReadEnabled, "listEnabled": &p.ListEnabled,
	}
	for name, raw := range fields {
		field, ok := dst[name]
		if !ok {
			return p, errBadRequest("unknown attribute %q", clipName(name))
		}
		var v bool
		switch string(bytes.TrimSpace(raw)) {
		case "true":
			v = true
		case "false":
		default:
			return p, errBadRequest("%s must be true or false", name)
		}
		*field = &v
	}
	return p, nil
}

func clipName(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func boolParam(q url.Values, name string) (*bool, error) {
	v := q.Get(name)
	if v == "" {
		return nil, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return nil, errBadRequest("%s must be true or false", name)
	}
	return &b, nil
}

// setLink adds the Link header of the next page.
func setLink(w http.ResponseWriter, path string, q url.Values) {
	w.Header().Set("Link", "<"+path+"?"+q.Encode()+`>; rel="next"`)
}
