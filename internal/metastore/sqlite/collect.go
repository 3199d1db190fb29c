package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/metastore"
)

// This file holds what garbage collection and access tokens need of the store.

func (r reader) RepositoryAttributes(ctx context.Context, repo string) (metastore.Attributes, error) {
	var a metastore.Attributes
	err := r.q.queryRow(ctx, `SELECT delete_enabled, write_enabled, read_enabled, list_enabled
		FROM repos WHERE name = ?`, repo).Scan(&a.DeleteEnabled, &a.WriteEnabled, &a.ReadEnabled, &a.ListEnabled)
	return a, notFound(err)
}

func (r reader) Nodes(ctx context.Context, repo string, after digest.Digest, n int) ([]metastore.Node, error) {
	rows, err := r.q.query(ctx, `SELECT m.digest, m.subject, m.tag_count, m.delete_enabled, m.updated,
			(SELECT group_concat(mr.digest, ' ') FROM manifest_refs mr
			 WHERE mr.manifest_id = m.id AND mr.is_manifest = 1)
		FROM manifests m WHERE m.repo_id = (SELECT id FROM repos WHERE name = ?) AND m.digest > ?
		ORDER BY m.digest LIMIT ?`, repo, after.String(), n)
	if err != nil {
		return nil, fmt.Errorf("metastore: %w", err)
	}
	defer rows.Close()
	out := []metastore.Node{}
	for rows.Next() {
		var (
			nd            metastore.Node
			subject, kids sql.NullString
			tags, updated int64
		)
		if err := rows.Scan(&nd.Digest, &subject, &tags, &nd.DeleteEnabled, &updated, &kids); err != nil {
			return nil, fmt.Errorf("metastore: %w", err)
		}
		nd.Subject = digest.Digest(subject.String)
		nd.Tagged = tags > 0
		nd.Updated = time.Unix(0, updated).UTC()
		for _, k := range strings.Fields(kids.String) {
			nd.Children = append(nd.Children, digest.Digest(k))
		}
		out = append(out, nd)
	}
	return out, rows.Err()
}

// unreferenced is the condition on a repo_blobs row that no manifest of its repository
// names the blob.
const unreferenced = `NOT EXISTS (SELECT 1 FROM manifest_refs mr JOIN manifests m ON m.id = mr.manifest_id
	WHERE mr.digest = rb.digest AND mr.is_manifest = 0 AND m.repo_id = rb.repo_id)`

func (r reader) UnreferencedBlobs(ctx context.Context, repo string, t time.Time, after digest.Digest, n int) ([]digest.Digest, error) {
	return r.digests(ctx, `SELECT rb.digest FROM repo_blobs rb
		WHERE rb.repo_id = (SELECT id FROM repos WHERE name = ?) AND rb.digest > ? AND rb.created < ?
		AND `+unreferenced+` ORDER BY rb.digest LIMIT ?`, repo, after.String(), t.UnixNano(), n)
}

func (r reader) UnlinkedBlobs(ctx context.Context, after digest.Digest, n int) ([]digest.Digest, error) {
	return r.digests(ctx, `SELECT b.digest FROM blobs b WHERE b.digest > ?
		AND NOT EXISTS (SELECT 1 FROM repo_blobs rb WHERE rb.digest = b.digest)
		ORDER BY b.digest LIMIT ?`, after.String(), n)
}

func (r reader) digests(ctx context.Context, query string, args ...any) ([]digest.Digest, error) {
	names, err := r.strings(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	out := make([]digest.Digest, len(names))
	for i, s := range names {
		out[i] = digest.Digest(s)
	}
	return out, nil
}

func (t *txn) ClaimBlob(ctx context.Context, d digest.Digest, size int64) error {
	_, err := t.q.exec(ctx, `INSERT INTO blobs (digest, size, created) VALUES (?, ?, ?)
		ON CONFLICT (digest) DO UPDATE SET created = excluded.created`, d.String(), size, time.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("metastore: %w", err)
	}
	return nil
}

func (t *txn) UnlinkUnreferenced(ctx context.Context, repo string, d digest.Digest, tm time.Time) (bool, error) {
	var id, size int64
	err := t.q.queryRow(ctx, `SELECT rb.repo_id, b.size FROM repo_blobs rb JOIN blobs b ON b.digest = rb.digest
		WHERE rb.repo_id = (SELECT id FROM repos WHERE name = ?) AND rb.digest = ? AND rb.created < ?
		AND `+unreferenced, repo, d.String(), tm.UnixNano()).Scan(&id, &size)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("metastore: %w", err)
	}
	if _, err := t.q.exec(ctx, `DELETE FROM repo_blobs WHERE repo_id = ? AND digest = ?`, id, d.String()); err != nil {
		return false, fmt.Errorf("metastore: %w", err)
	}
	t.addToRepo(id, 0, 0, -size)
	return true, nil
}

// SweepBlob implements metastore.Store. It runs as one op of the writer, so every
// other write — LinkBlob and ClaimBlob of d among them — waits until it is done.
func (s *Store) SweepBlob(ctx context.Context, d digest.Digest, tm time.Time, del func(context.Context) error) (bool, error) {
	var swept bool
	err := s.Update(ctx, func(tx metastore.Tx) error {
		t := tx.(*txn)
		var one int
		err := t.q.queryRow(ctx, `SELECT 1 FROM repo_blobs WHERE digest = ? LIMIT 1`, d.String()).Scan(&one)
		if err == nil {
			return nil
		} else if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("metastore: %w", err)
		}
		var claimed int64
		err = t.q.queryRow(ctx, `SELECT created FROM blobs WHERE digest = ?`, d.String()).Scan(&claimed)
		if err == nil && claimed >= tm.UnixNano() {
			return nil
		} else if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("metastore: %w", err)
		}
		if err := del(ctx); err != nil {
			return err
		}
		if _, err := t.q.exec(ctx, `DELETE FROM blobs WHERE digest = ?`, d.String()); err != nil {
			return fmt.Errorf("metastore: %w", err)
		}
		swept = true
		return nil
	})
	return swept && err == nil, err
}

func (r reader) Token(ctx context.Context, name string) (*metastore.Token, error) {
	tok, err := scanToken(r.q.queryRow(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE name = ?`, name))
	if err != nil {
		return nil, notFound(err)
	}
	return tok, nil
}

func (r reader) Tokens(ctx context.Context) ([]metastore.Token, error) {
	rows, err := r.q.query(ctx, `SELECT `+tokenColumns+` FROM tokens ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("metastore: %w", err)
	}
	defer rows.Close()
	out := []metastore.Token{}
	for rows.Next() {
		tok, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("metastore: %w", err)
		}
		out = append(out, *tok)
	}
	return out, rows.Err()
}

const tokenColumns = `name, hash, repositories, actions, created, expires`

func scanToken(s interface{ Scan(...any) error }) (*metastore.Token, error) {
	var (
		tok              metastore.Token
		repos, actions   string
		created, expires int64
	)
	if err := s.Scan(&tok.Name, &tok.Hash, &repos, &actions, &created, &expires); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(repos), &tok.Repositories); err != nil {
		return nil, fmt.Errorf("repositories of token %s: %w", tok.Name, err)
	}
	if err := json.Unmarshal([]byte(actions), &tok.Actions); err != nil {
		return nil, fmt.Errorf("actions of token %s: %w", tok.Name, err)
	}
	tok.Created = time.Unix(0, created).UTC()
	if expires != 0 {
		tok.Expires = time.Unix(0, expires).UTC()
	}
	return &tok, nil
}

func (t *txn) CreateToken(ctx context.Context, tok *metastore.Token) error {
	repos, err := json.Marshal(tok.Repositories)
	if err != nil {
		return fmt.Errorf("metastore: %w", err)
	}
	actions, err := json.Marshal(tok.Actions)
	if err != nil {
		return fmt.Errorf("metastore: %w", err)
	}
	var expires int64
	if !tok.Expires.IsZero() {
		expires = tok.Expires.UnixNano()
	}
	res, err := t.q.exec(ctx, `INSERT INTO tokens (`+tokenColumns+`) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (name) DO NOTHING`, tok.Name, tok.Hash, string(repos), string(actions), tok.Created.UnixNano(), expires)
	if err != nil {
		return fmt.Errorf("metastore: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return metastore.ErrExists
	}
	return nil
}

func (t *txn) DeleteToken(ctx context.Context, name string) error {
	res, err := t.q.exec(ctx, `DELETE FROM tokens WHERE name = ?`, name)
	return affected(res, err)
}
