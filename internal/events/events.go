// Package events delivers the registry's changes, written to the outbox of the
// metadata store in the same transaction as each change, to the consumers that follow
// them: webhooks, and replication rules. Every replica runs every consumer's worker;
// one at a time holds a consumer's lease and delivers, in outbox order, at least once:
// an event is done for a consumer when its delivery succeeded, and the consumer's place
// in the outbox moves past it only then. A delivery that fails is tried again, with a
// growing pause, until it succeeds; the consumer records the outcome each time.
package events

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/metastore"
)

// The types of events, as CloudEvents name them.
const (
	ManifestPushed    = "io.graft.manifest.pushed"
	ManifestDeleted   = "io.graft.manifest.deleted"
	TagMoved          = "io.graft.tag.moved"
	TagDeleted        = "io.graft.tag.deleted"
	RepositoryDeleted = "io.graft.repository.deleted"
)

// Actions are the short names of the types, as a webhook's actions filter names them.
var Actions = map[string]string{
	"push":              ManifestPushed,
	"delete":            ManifestDeleted,
	"tag":               TagMoved,
	"untag":             TagDeleted,
	"repository-delete": RepositoryDeleted,
}

// Manifest is the data of a pushed manifest's event.
type Manifest struct {
	Repository   string        `json:"repository"`
	Digest       digest.Digest `json:"digest"`
	MediaType    string        `json:"mediaType"`
	Size         int64         `json:"size"`
	ArtifactType string        `json:"artifactType,omitempty"`
	Kind         string        `json:"kind,omitempty"`
	Subject      digest.Digest `json:"subject,omitempty"`
	Tags         []string      `json:"tags,omitempty"`
}

// Deleted is the data of a manifest delete's event: the manifest named, and the graph
// the cascade removed with it.
type Deleted struct {
	Repository string          `json:"repository"`
	Digest     digest.Digest   `json:"digest"`
	Cascade    []digest.Digest `json:"cascade,omitempty"`
	// By says who removed it: a client, gc, or retention.
	By string `json:"by,omitempty"`
}

// Tag is the data of a tag's event.
type Tag struct {
	Repository string        `json:"repository"`
	Tag        string        `json:"tag"`
	Digest     digest.Digest `json:"digest"`
	// Previous is the manifest a moved tag named before.
	Previous digest.Digest `json:"previous,omitempty"`
	By       string        `json:"by,omitempty"`
}

// Repository is the data of a repository's event.
type Repository struct {
	Repository string `json:"repository"`
}

// CloudEvent is an event as a webhook receives it: CloudEvents 1.0, structured mode.
type CloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject,omitempty"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
}

// NewCloudEvent returns e as CloudEvents carry it, from source (a URI reference naming
// the registry). Its id is e's place in the outbox: the same every time e is
// delivered, which makes it the key a receiver drops repeated deliveries by.
func NewCloudEvent(e metastore.Event, source string) (*CloudEvent, error) {
	if !json.Valid(e.Data) {
		return nil, fmt.Errorf("event %d: its data is not JSON", e.Seq)
	}
	var about struct {
		Repository string        `json:"repository"`
		Digest     digest.Digest `json:"digest"`
		Tag        string        `json:"tag"`
	}
	json.Unmarshal(e.Data, &about)
	subject := about.Repository
	switch {
	case about.Tag != "":
		subject += ":" + about.Tag
	case about.Digest != "":
		subject += "@" + about.Digest.String()
	}
	return &CloudEvent{
		SpecVersion:     "1.0",
		ID:              strconv.FormatInt(e.Seq, 10),
		Source:          source,
		Type:            e.Type,
		Subject:         subject,
		Time:            e.Time,
		DataContentType: "application/json",
		Data:            e.Data,
	}, nil
}
