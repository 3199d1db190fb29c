package sqlite_test

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/metastore/sqlite"
	"github.com/graft-registry/graft/internal/metastore/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) metastore.Store {
		s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "graft.db"))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	})
}

func open(tb testing.TB, path string) *sqlite.Store {
	tb.Helper()
	s, err := sqlite.Open(tb.Context(), path)
	if err != nil {
		tb.Fatalf("Open(%q): %v", path, err)
	}
	return s
}

func TestReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "graft.db")
	created := time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC)
	blob := digest.FromString("blob")
	m := storetest.Manifest("library/alpine", 1, blob)
	m.Created, m.Updated = created, created
	up := metastore.Upload{ID: "u", Repo: "library/alpine", Created: created, Modified: created}

	s := open(t, path)
	err := s.Update(ctx, func(tx metastore.Tx) error {
		if err := tx.LinkBlob(ctx, m.Repo, blob, 2); err != nil {
			return err
		}
		if err := tx.PutManifest(ctx, m); err != nil {
			return err
		}
		if err := tx.SetTag(ctx, m.Repo, "3.20", m.Digest); err != nil {
			return err
		}
		return tx.CreateUpload(ctx, &up)
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = open(t, path)
	defer s.Close()
	got, err := s.TaggedManifest(ctx, m.Repo, "3.20")
	if err != nil {
		t.Fatalf("TaggedManifest after reopening: %v", err)
	}
	if got.Digest != m.Digest || string(got.Content) != string(m.Content) || !got.Created.Equal(created) {
		t.Errorf("manifest after reopening = %s %q created %v, want %s %q created %v",
			got.Digest, got.Content, got.Created, m.Digest, m.Content, created)
	}
	if size, err := s.Blob(ctx, m.Repo, blob); err != nil || size != 2 {
		t.Errorf("Blob after reopening = %d, %v; want 2", size, err)
	}
	if u, err := s.Upload(ctx, "u"); err != nil || u.Repo != up.Repo || !u.Modified.Equal(created) {
		t.Errorf("Upload after reopening = %+v, %v; want %+v", u, err, up)
	}
	if rs, err := s.Repositories(ctx, "", 10); err != nil || !slices.Equal(rs, []string{m.Repo}) {
		t.Errorf("Repositories after reopening = %v, %v", rs, err)
	}
	// And it takes writes.
	err = s.Update(ctx, func(tx metastore.Tx) error { return tx.DeleteTag(ctx, m.Repo, "3.20") })
	if err != nil {
		t.Errorf("Update after reopening: %v", err)
	}
}

func TestNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "graft.db")
	if err := open(t, path).Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// A later graft migrated the database past what this one knows.
	const future = 1000
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", future)); err != nil {
		t.Fatal(err)
	}

	s, err := sqlite.Open(t.Context(), path)
	if err == nil {
		s.Close()
		t.Fatal("Open of a database with a newer schema succeeded")
	}
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil || v != future {
		t.Errorf("schema version after the refused Open = %d, %v; want %d untouched", v, err, future)
	}
}

func BenchmarkPutManifest(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "graft.db"))
	defer s.Close()
	storetest.BenchmarkPut(b, []metastore.Store{s}, false)
}

func BenchmarkTaggedManifest(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "graft.db"))
	defer s.Close()
	storetest.BenchmarkTaggedManifest(b, s)
}

func BenchmarkReferrers(b *testing.B) {
	storetest.BenchmarkReferrers(b, func(b *testing.B) metastore.Store {
		s := open(b, filepath.Join(b.TempDir(), "graft.db"))
		b.Cleanup(func() { s.Close() })
		return s
	})
}

// TestUpgrade opens a database of schema version 2, written as graft wrote it before
// kinds and tag-schema edges were kept: Open migrates it and backfills both.
func TestUpgrade(t *testing.T) {
	path := filepath.Join(t.TempDir(), "graft.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	b := storetest.OldData()
	stmts := append(slices.Clone(sqlite.Migrations[:2]), `PRAGMA user_version = 2`,
		`INSERT INTO repos (id, name, created, updated) VALUES (1, '`+b.Repo+`', 1, 1)`)
	ids := map[digest.Digest]int{}
	for i, m := range b.Manifests() {
		ids[m.Digest] = i + 1
		stmts = append(stmts, fmt.Sprintf(`INSERT INTO manifests (id, repo_id, digest, media_type, size, total_size,
			artifact_type, config_media_type, subject, created, updated, content)
			VALUES (%d, 1, '%s', '%s', %d, %d, '%s', '%s', %s, 1, 1, x'%x')`,
			i+1, m.Digest, m.MediaType, m.Size, m.Size, m.ArtifactType, m.ConfigMediaType,
			map[bool]string{true: "'" + m.Subject.String() + "'", false: "NULL"}[m.Subject != ""], m.Content))
		for _, r := range m.References {
			stmts = append(stmts, fmt.Sprintf(`INSERT INTO manifest_refs VALUES (%d, '%s', %d, %v)`,
				i+1, r.Digest, r.Size, map[bool]int{true: 1, false: 0}[r.Manifest]))
		}
	}
	for tag, d := range b.Tags {
		stmts = append(stmts, fmt.Sprintf(`INSERT INTO tags VALUES (1, '%s', %d, 1)`, tag, ids[d]))
	}
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	db.Close()
	s := open(t, path)
	defer s.Close()
	storetest.CheckUpgrade(t, s, b)
}

// TestStatementPlans checks that no statement reads a range of a repository's rows to
// find a few of them, or scans a whole table: every statement is an indexed lookup
// whose cost follows its answer. SQLite plans without statistics (the database is
// never analyzed), so a plan is what its heuristics choose for the schema; a statement
// that needs it names its join order (CROSS JOIN) or index (INDEXED BY).
func TestStatementPlans(t *testing.T) {
	path := filepath.Join(t.TempDir(), "graft.db")
	s := open(t, path)
	s.Close()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// Tables small enough, or read whole on purpose: the backfills a migration left, the
	// registry-wide counters (a row per counter), the tokens and the outbox's consumers
	// all listed.
	scanned := map[string]bool{"backfills": true, "tokens": true, "stats": true, "event_consumers": true, "json_each": true, "CONSTANT": true}
	v := reflect.ValueOf(sqlite.Queries)
	statements := map[string]string{}
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.String && f.String() != "" {
			statements[v.Type().Field(i).Name] = f.String()
		}
	}
	mq := sqlite.Queries.Manifests
	statements["Manifests"] = mq.Select + mq.Order
	repoRange := regexp.MustCompile(`^SEARCH (\w+) USING .*\(repo_id=\?\)$`)
	for name, q := range statements {
		args := make([]any, 8)
		for i := range args {
			args[i] = "x"
		}
		rows, err := db.Query("EXPLAIN QUERY PLAN "+q, args...)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		for _, step := range plan {
			if f := strings.Fields(step); len(f) >= 2 && f[0] == "SCAN" && !scanned[f[1]] && !strings.HasPrefix(f[1], "(subquery") {
				t.Errorf("%s scans table %s: %q", name, f[1], plan)
			}
			if m := repoRange.FindStringSubmatch(step); m != nil {
				t.Errorf("%s reads a range of the repository's %s: %q", name, m[1], plan)
			}
		}
	}
}

func BenchmarkTagArtifacts(b *testing.B) {
	storetest.BenchmarkTagArtifacts(b, func(b *testing.B) metastore.Store {
		s := open(b, filepath.Join(b.TempDir(), "graft.db"))
		b.Cleanup(func() { s.Close() })
		return s
	})
}
