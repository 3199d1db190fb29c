package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/metastore/postgres"
	"github.com/graft-registry/graft/internal/metastore/storetest"
)

// newDatabase creates an empty database for the test, dropped when it ends, and returns
// its URL. Every test has its own, so tests are isolated and may run in parallel.
func newDatabase(tb testing.TB) string {
	tb.Helper()
	admin := os.Getenv("GRAFT_TEST_POSTGRES_URL")
	if admin == "" {
		tb.Skip("GRAFT_TEST_POSTGRES_URL is not set; start a PostgreSQL with: eval \"$(/work/shared/services/postgres.sh start)\"")
	}
	u, err := url.Parse(admin)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		tb.Fatalf("GRAFT_TEST_POSTGRES_URL %q is not a postgres:// URL", admin)
	}
	b := make([]byte, 8)
	rand.Read(b)
	name := "graft_test_" + hex.EncodeToString(b)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, admin)
	if err != nil {
		tb.Fatalf("connect to %s: %v", u.Redacted(), err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("create database %s: %v", name, err)
	}
	tb.Cleanup(func() { dropDatabase(tb, admin, name) })
	u.Path = "/" + name
	return u.String()
}

// dropDatabase drops the database name, once the test's stores have closed their
// connections. Not WITH (FORCE): that would need the right to terminate an autovacuum
// worker, which a plain DROP DATABASE asks to quit by itself. It waits a few seconds for
// other sessions, and then retries a while.
func dropDatabase(tb testing.TB, admin, name string) {
	ctx := context.Background()
	c, err := pgx.Connect(ctx, admin)
	if err != nil {
		tb.Errorf("connect to drop database %s: %v", name, err)
		return
	}
	defer c.Close(ctx)
	for try := 0; ; try++ {
		_, err := c.Exec(ctx, "DROP DATABASE "+name)
		var pe *pgconn.PgError
		if err == nil || !errors.As(err, &pe) || pe.Code != "55006" || try == 5 { // object_in_use
			if err != nil {
				tb.Errorf("drop database %s: %v", name, err)
			}
			return
		}
		time.Sleep(time.Second)
	}
}

func open(tb testing.TB, dbURL string) *postgres.Store {
	tb.Helper()
	s, err := postgres.Open(tb.Context(), postgres.Options{URL: dbURL})
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// connect opens a plain connection to the database, for the tests to look at its rows.
func connect(tb testing.TB, dbURL string) *pgx.Conn {
	tb.Helper()
	c, err := pgx.Connect(tb.Context(), dbURL)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) metastore.Store {
		s, err := postgres.Open(t.Context(), postgres.Options{URL: newDatabase(t)})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	})
}

// TestConcurrentMigration starts replicas at once on a new database: each must open,
// and the schema must be migrated once.
func TestConcurrentMigration(t *testing.T) {
	dbURL := newDatabase(t)
	const replicas = 4
	start := make(chan struct{})
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Go(func() {
			<-start
			s, err := postgres.Open(t.Context(), postgres.Options{URL: dbURL, MaxConns: 2})
			if err == nil {
				s.Close()
			}
			errs[i] = err
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
		}
	}
	c := connect(t, dbURL)
	rows, err := c.Query(t.Context(), `SELECT version FROM graft_schema ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	if len(versions) == 0 || versions[0] != 1 || versions[len(versions)-1] != len(versions) {
		t.Errorf("schema versions applied = %v, want 1 to N, each once", versions)
	}
	// And the schema is usable from a store opened afterwards.
	s := open(t, dbURL)
	if err := s.Update(t.Context(), func(tx metastore.Tx) error {
		return tx.LinkBlob(t.Context(), "r", digest.FromString("b"), 1)
	}); err != nil {
		t.Errorf("Update after the migration: %v", err)
	}
}

func TestNewerSchema(t *testing.T) {
	dbURL := newDatabase(t)
	open(t, dbURL).Close()
	const future = 1000
	c := connect(t, dbURL)
	if _, err := c.Exec(t.Context(), `INSERT INTO graft_schema (version) VALUES ($1)`, future); err != nil {
		t.Fatal(err)
	}
	s, err := postgres.Open(t.Context(), postgres.Options{URL: dbURL})
	if err == nil {
		s.Close()
		t.Fatal("Open of a database with a newer schema succeeded")
	}
	var v int
	if err := c.QueryRow(t.Context(), `SELECT max(version) FROM graft_schema`).Scan(&v); err != nil || v != future {
		t.Errorf("schema version after the refused Open = %d, %v; want %d untouched", v, err, future)
	}
}

// TestUpgrade opens a database of schema version 1, written as graft wrote it before
// kinds and tag-schema edges were kept: Open migrates it and backfills both.
func TestUpgrade(t *testing.T) {
	dbURL := newDatabase(t)
	ctx := t.Context()
	c := connect(t, dbURL)
	b := storetest.OldData()
	// No arguments: the simple protocol, which runs every statement of the script.
	if _, err := c.Exec(ctx, `CREATE TABLE graft_schema (version integer PRIMARY KEY, applied timestamptz NOT NULL DEFAULT now());
		INSERT INTO graft_schema (version) VALUES (1);`+postgres.Migrations[0]); err != nil {
		t.Fatal(err)
	}
	batch := &pgx.Batch{}
	batch.Queue(`INSERT INTO repos (name, created) VALUES ($1, now())`, b.Repo)
	for _, m := range b.Manifests() {
		var subject *string
		if m.Subject != "" {
			s := m.Subject.String()
			subject = &s
		}
		batch.Queue(`INSERT INTO manifests (repo_id, digest, media_type, size, total_size, artifact_type,
			config_media_type, subject, created, updated, content) VALUES (1, $1, $2, $3, $3, $4, $5, $6, now(), now(), $7)`,
			m.Digest.String(), m.MediaType, m.Size, m.ArtifactType, m.ConfigMediaType, subject, m.Content)
		for _, r := range m.References {
			batch.Queue(`INSERT INTO manifest_refs VALUES (1, $1, $2, $3, $4)`, m.Digest.String(), r.Digest.String(), r.Size, r.Manifest)
		}
	}
	for tag, d := range b.Tags {
		batch.Queue(`INSERT INTO tags (repo_id, name, manifest, updated) VALUES (1, $1, $2, now())`, tag, d.String())
	}
	if err := c.SendBatch(ctx, batch).Close(); err != nil {
		t.Fatal(err)
	}
	storetest.CheckUpgrade(t, open(t, dbURL), b)
}

// TestReferrersPlan checks that the referrers queries, with and without an artifactType
// filter, scan their indexes, in a repository of 2000 manifests of which the subject
// has 100 referrers: no sequential scan of manifests, whose cost would follow the size of
// the repository. A small page is a range scan in digest order that stops after n rows:
// no sort.
func TestReferrersPlan(t *testing.T) {
	ctx := t.Context()
	dbURL := newDatabase(t)
	s := open(t, dbURL)
	const (
		repo  = "plan/referrers"
		typeA = "application/vnd.example.a"
		typeB = "application/vnd.example.b"
	)
	subject := storetest.Manifest(repo, -1)
	ms := []*metastore.Manifest{subject}
	for i := range int64(2000) {
		m := storetest.Manifest(repo, i)
		switch {
		case i < 100: // referrers of the subject, of two types
			m.Subject = subject.Digest
			m.ArtifactType = []string{typeA, typeB}[i%2]
		case i < 1000: // referrers of other subjects, 10 each
			m.Subject = digest.FromString(fmt.Sprint("other subject ", i/10))
			m.ArtifactType = []string{typeA, typeB}[i%2]
		}
		ms = append(ms, m)
	}
	// Another repository, with referrers of the same subject.
	for i := range int64(200) {
		m := storetest.Manifest("plan/other", i)
		m.Subject = subject.Digest
		ms = append(ms, m)
	}
	for chunk := range slices.Chunk(ms, 500) {
		err := s.Update(ctx, func(tx metastore.Tx) error {
			for _, m := range chunk {
				if err := tx.PutManifest(ctx, m); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	c := connect(t, dbURL)
	if _, err := c.Exec(ctx, `ANALYZE`); err != nil {
		t.Fatal(err)
	}

	for _, q := range []struct {
		name, sql, types, args, index string
	}{
		{"all", postgres.ReferrersQuery, "text, text, text, bigint",
			fmt.Sprintf("'%s', '%s', '', %%d", repo, subject.Digest), "manifests_by_subject"},
		{"artifactType", postgres.ReferrersOfTypeQuery, "text, text, text, bigint, text",
			fmt.Sprintf("'%s', '%s', '', %%d, '%s'", repo, subject.Digest, typeA), "manifests_by_subject_type"},
	} {
		// As a client with default settings sees it and as the store's connections
		// (enable_seqscan off) do; with the plan for the values, and with the generic
		// plan a prepared statement may settle on; a page of the API's size, and a small
		// one.
		for _, seqscan := range []string{"on", "off"} {
			for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
				for _, n := range []int{1000, 10} {
					t.Run(fmt.Sprintf("%s/enable_seqscan=%s/%s/n=%d", q.name, seqscan, mode, n), func(t *testing.T) {
						for _, set := range []string{"enable_seqscan = " + seqscan, "plan_cache_mode = " + mode} {
							if _, err := c.Exec(ctx, "SET "+set); err != nil {
								t.Fatal(err)
							}
						}
						// Only this test's statement: pgx's own prepared statements stay.
						c.Exec(ctx, `DEALLOCATE referrers`)
						if _, err := c.Exec(ctx, fmt.Sprintf("PREPARE referrers(%s) AS %s", q.types, q.sql)); err != nil {
							t.Fatalf("prepare: %v", err)
						}
						var plan string
						explain := fmt.Sprintf("EXPLAIN (FORMAT JSON) EXECUTE referrers(%s)", fmt.Sprintf(q.args, n))
						if err := c.QueryRow(ctx, explain).Scan(&plan); err != nil {
							t.Fatalf("explain: %v", err)
						}
						checkPlan(t, plan, q.index, n < 100)
					})
				}
			}
		}
	}

	// The plan is not a fluke of a query that finds nothing: it answers.
	for _, c := range []struct {
		typ  string
		want int
	}{{"", 100}, {typeA, 50}} {
		refs, err := s.Referrers(ctx, repo, subject.Digest, c.typ, "", 1000)
		if err != nil || len(refs) != c.want {
			t.Errorf("Referrers(type %q) = %d descriptors, %v; want %d", c.typ, len(refs), err, c.want)
		}
	}
}

// TestStatementPlans checks the plans of a push's statements and of the point lookups
// on a new database, before any ANALYZE, as generic plans (those a prepared statement
// settles on) with the store's settings: each reaches its rows through its own index.
// On tables without statistics every index whose first column the query constrains
// costs about the same, and a plan that scans a whole repository's range of another
// index would then stay in use, costing what the repository holds and locking, in a
// serializable transaction, index pages that every concurrent push writes into.
func TestStatementPlans(t *testing.T) {
	ctx := t.Context()
	dbURL := newDatabase(t)
	s := open(t, dbURL)
	const repo = "plan/push"
	blob := digest.FromString("blob")
	child := storetest.Manifest(repo, 0, blob)
	err := s.Update(ctx, func(tx metastore.Tx) error {
		if err := tx.LinkBlob(ctx, repo, blob, 2); err != nil {
			return err
		}
		for i := range int64(5) {
			m := storetest.Manifest(repo, i, blob)
			if err := tx.PutManifest(ctx, m); err != nil {
				return err
			}
			if err := tx.SetTag(ctx, repo, fmt.Sprint("v", i), m.Digest); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c := connect(t, dbURL)
	for _, set := range []string{"enable_seqscan = off", "plan_cache_mode = force_generic_plan"} {
		if _, err := c.Exec(ctx, "SET "+set); err != nil {
			t.Fatal(err)
		}
	}
	d, tag := child.Digest.String(), "v0"
	for _, q := range []struct {
		name, sql, types, args string
		indexes                []string // the indexes the plan may scan
		tidScan                bool     // the plan must reach a row by its tuple id
	}{
		// A manifest's columns look up the manifests it is a tag-schema artifact of.
		{"Manifest", postgres.ManifestQuery, "text, text", fmt.Sprintf("'%s', '%s'", repo, d),
			[]string{"repos_name_key", "manifests_pkey", "tag_edges_by_artifact"}, false},
		{"TaggedManifest", postgres.TaggedManifestQuery, "text, text", fmt.Sprintf("'%s', '%s'", repo, tag),
			[]string{"repos_name_key", "tags_pkey", "manifests_pkey", "tag_edges_by_artifact"}, false},
		{"Tag", postgres.TagQuery, "text, text", fmt.Sprintf("'%s', '%s'", repo, tag),
			[]string{"repos_name_key", "tags_pkey", "manifests_pkey", "tag_edges_by_artifact"}, false},
		{"Tags", postgres.TagsQuery, "text, text, bigint", fmt.Sprintf("'%s', '', 10", repo),
			[]string{"repos_name_key", "tags_pkey", "manifests_pkey"}, false},
		{"TagList", postgres.TagListQuery, "text, text, bigint", fmt.Sprintf("'%s', '', 10", repo),
			[]string{"repos_name_key", "tags_pkey"}, false},
		{"RecordManifestPull", postgres.RecordManifestPullStatement, "text, text, timestamptz", fmt.Sprintf("'%s', '%s', now()", repo, d),
			[]string{"repos_name_key", "manifests_pkey"}, false},
		{"RecordTagPull", postgres.RecordTagPullStatement, "text, text, timestamptz, text", fmt.Sprintf("'%s', 'v0', now(), '%s'", repo, d),
			[]string{"repos_name_key", "tags_pkey", "tags_by_manifest"}, false},
		{"TagsOf", postgres.TagsOfQuery, "text, text", fmt.Sprintf("'%s', '%s'", repo, d),
			[]string{"repos_name_key", "tags_by_manifest"}, false},
		{"Parents", postgres.ParentsQuery, "text, text", fmt.Sprintf("'%s', '%s'", repo, d),
			[]string{"repos_name_key", "manifest_refs_children"}, false},
		{"BlobSizes", postgres.BlobSizesQuery, "text, text[]", fmt.Sprintf("'%s', '{%s}'", repo, blob),
			[]string{"repos_name_key", "repo_blobs_pkey", "blobs_pkey"}, false},
		{"ManifestSizes", postgres.ManifestSizesQuery, "text, text[]", fmt.Sprintf("'%s', '{%s}'", repo, d),
			[]string{"repos_name_key", "manifests_pkey"}, false},
		// The caps of upload sessions count through an index, up to the cap.
		{"OpenUploads", postgres.OpenUploadsQuery, "text, text, bigint", fmt.Sprintf("'%s', 'user:alice', 1000", repo),
			[]string{"uploads_by_repo", "uploads_by_owner"}, false},
		{"EmptyUploads", postgres.EmptyUploadsQuery, "timestamptz, bigint", "now(), 100",
			[]string{"uploads_empty"}, false},
		{"LockingManifest", postgres.LockingManifestQuery, "text, text", fmt.Sprintf("'%s', '%s'", repo, blob),
			[]string{"repos_name_key", "manifest_refs_blobs", "manifests_pkey"}, false},
		{"PutManifest", postgres.PutManifestStatement,
			"bigint, text, text, bigint, text, text, text, text, text, text, text, text, text[], timestamptz, timestamptz, bytea, timestamptz, text[], bigint[], bigint[], boolean[], text",
			fmt.Sprintf(`1, '%s', 'm', 5, 'a', 'c', NULL, NULL, '', '', '', '', NULL, now(), now(), 'x', now(), '{%s, %s}', '{1, 2}', '{1, 2}', '{false, true}', 'image'`,
				digest.FromString("new"), blob, d),
			[]string{"manifests_pkey", "blobs_pkey"}, false},
		{"SetTag", postgres.SetTagStatement, "bigint, text, text, timestamptz", fmt.Sprintf("1, '%s', 'v9', now()", d),
			[]string{"manifests_pkey"}, false},
		// A push tags the manifest it has just put: only a tag's previous target is
		// looked up by digest.
		{"SetTagWritten", postgres.SetTagWrittenStatement, "bigint, text, text, timestamptz, tid",
			fmt.Sprintf("1, '%s', 'v9', now(), '(0,1)'", d), []string{"manifests_pkey"}, true},
		// A push's manifest and tag in one statement: only the tag's previous target is
		// looked up by digest, and the manifest's row when it is stored already.
		{"PutTagged", postgres.PutTaggedStatement,
			"bigint, text, text, bigint, text, text, text, text, text, text, text, text, text[], timestamptz, timestamptz, bytea, timestamptz, text[], bigint[], bigint[], boolean[], text, text, timestamptz",
			fmt.Sprintf(`1, '%s', 'm', 5, 'a', 'c', NULL, NULL, '', '', '', '', NULL, now(), now(), 'x', now(), '{%s, %s}', '{1, 2}', '{1, 2}', '{false, true}', 'image', 'v9', now()`,
				digest.FromString("new"), blob, d),
			[]string{"manifests_pkey", "blobs_pkey"}, false},
		{"DeleteManifest", postgres.DeleteManifestStatement, "text, text, timestamptz", fmt.Sprintf("'%s', '%s', now()", repo, d),
			[]string{"repos_name_key", "manifests_pkey", "tags_by_manifest", "manifest_refs_pkey", "repo_blobs_pkey",
				"tag_edges_pkey", "tag_edges_by_artifact"}, false},
		// The outbox: a consumer reads from its place, the sequencer what has none.
		{"Events", postgres.EventsQuery, "bigint, bigint", "0, 100", []string{"events_seq_key"}, false},
		{"SequenceEvents", postgres.SequenceEventsStatement, "", "",
			[]string{"events_unplaced", "events_seq_key", "events_pkey"}, false},
		{"Backlog", postgres.BacklogQuery, "bigint", "0", []string{"events_seq_key", "events_unplaced"}, false},
		{"PruneEvents", postgres.PruneEventsStatement, "timestamptz", "now()", []string{"events_seq_key", "event_consumers_by_after"}, false},
	} {
		t.Run(q.name, func(t *testing.T) {
			c.Exec(ctx, `DEALLOCATE stmt`)
			params, args := "", ""
			if q.types != "" {
				params, args = "("+q.types+")", "("+q.args+")"
			}
			if _, err := c.Exec(ctx, fmt.Sprintf("PREPARE stmt%s AS %s", params, q.sql)); err != nil {
				t.Fatalf("prepare: %v", err)
			}
			var plan string
			if err := c.QueryRow(ctx, "EXPLAIN (FORMAT JSON) EXECUTE stmt"+args).Scan(&plan); err != nil {
				t.Fatalf("explain: %v", err)
			}
			nodes, summary := planNodes(t, plan)
			tidScan := false
			for _, n := range nodes {
				if n.NodeType == "Seq Scan" {
					t.Errorf("a sequential scan of %s: %q", n.RelationName, summary)
				}
				if n.IndexName != "" && !slices.Contains(q.indexes, n.IndexName) {
					t.Errorf("the plan scans index %s, want only %v: %q", n.IndexName, q.indexes, summary)
				}
				tidScan = tidScan || n.NodeType == "Tid Scan"
			}
			if q.tidScan && !tidScan {
				t.Errorf("the plan does not reach the row by its tuple id: %q", summary)
			}
		})
	}
}

// planNode is a node of EXPLAIN (FORMAT JSON).
type planNode struct {
	NodeType     string     `json:"Node Type"`
	RelationName string     `json:"Relation Name"`
	IndexName    string     `json:"Index Name"`
	Plans        []planNode `json:"Plans"`
}

// planNodes returns the nodes of an EXPLAIN (FORMAT JSON) output, and a line for each,
// for messages.
func planNodes(t *testing.T, plan string) ([]planNode, []string) {
	t.Helper()
	var top []struct {
		Plan planNode `json:"Plan"`
	}
	if err := json.Unmarshal([]byte(plan), &top); err != nil || len(top) != 1 {
		t.Fatalf("EXPLAIN output %q: %v", plan, err)
	}
	var nodes []planNode
	var summary []string
	var walk func(n planNode)
	walk = func(n planNode) {
		nodes = append(nodes, n)
		summary = append(summary, strings.Join(strings.Fields(n.NodeType+" "+n.RelationName+" "+n.IndexName), " "))
		for _, c := range n.Plans {
			walk(c)
		}
	}
	walk(top[0].Plan)
	return nodes, summary
}

// checkPlan checks that plan scans index and no other way into manifests, and, when
// ordered, that it does not sort.
func checkPlan(t *testing.T, plan, index string, ordered bool) {
	t.Helper()
	nodes, summary := planNodes(t, plan)
	used := false
	for _, n := range nodes {
		switch {
		case n.NodeType == "Seq Scan" && n.RelationName == "manifests":
			t.Errorf("a sequential scan of manifests: %q", summary)
		case n.IndexName != "" && n.IndexName != index && strings.HasPrefix(n.IndexName, "manifests"):
			t.Errorf("the plan scans index %s, want %s: %q", n.IndexName, index, summary)
		case ordered && n.NodeType == "Sort":
			t.Errorf("the plan sorts, where the index gives digest order: %q", summary)
		}
		used = used || n.IndexName == index
	}
	if !used {
		t.Errorf("the plan does not scan index %s: %q", index, summary)
	}
}

// TestCounterSlots: sessions that write hold counter slots of their own, so that their
// concurrent pushes never update one repo_stats row. 65 sessions are one more than the
// slots of pg_backend_pid() % 64.
func TestCounterSlots(t *testing.T) {
	ctx := t.Context()
	dbURL := newDatabase(t)
	const sessions = 65
	held := map[string]bool{}
	for i := range sessions {
		var slot string
		if err := connect(t, dbURL).QueryRow(ctx, postgres.ClaimSlotStatement).Scan(&slot); err != nil {
			t.Fatal(err)
		}
		if held[slot] {
			t.Fatalf("session %d claimed slot %s, which another session holds", i, slot)
		}
		held[slot] = true
	}
}

// TestStatsInTheSessionSlot: the registry-wide counters are added to the slot the
// writing session claimed, as a repository's are, not to one its backend pid names,
// which two of 65 sessions share: their concurrent pushes would conflict on the row.
func TestStatsInTheSessionSlot(t *testing.T) {
	ctx := t.Context()
	dbURL := newDatabase(t)
	// Slots 0…99 held elsewhere: the store's one writing session claims 100, which no
	// backend pid modulo 64 names.
	if _, err := connect(t, dbURL).Exec(ctx, `SELECT pg_advisory_lock(1735549301, n) FROM generate_series(0, 99) n`); err != nil {
		t.Fatal(err)
	}
	s, err := postgres.Open(ctx, postgres.Options{URL: dbURL, MaxConns: 2}) // one writer
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	if err := s.Update(ctx, func(tx metastore.Tx) error {
		return tx.CreateUpload(ctx, &metastore.Upload{ID: "u1", Repo: "slots/r", Created: now, Modified: now, Owner: "test"})
	}); err != nil {
		t.Fatal(err)
	}
	rows, err := connect(t, dbURL).Query(ctx, `SELECT slot FROM stats WHERE key = 'uploads' AND value <> 0`)
	if err != nil {
		t.Fatal(err)
	}
	slots, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(slots, []int32{100}) {
		t.Errorf("the upload was counted in slots %v, want [100], the session's", slots)
	}
}

// TestSweepBlobWaits runs a SweepBlob on one replica and, while its del runs, a
// ClaimBlob and a LinkBlob of the same blob on another: both wait for the sweep to
// return, and neither is lost to it.
func TestSweepBlobWaits(t *testing.T) {
	ctx := t.Context()
	dbURL := newDatabase(t)
	a, b := open(t, dbURL), open(t, dbURL)
	d := digest.FromString("swept")
	if err := b.Update(ctx, func(tx metastore.Tx) error { _, err := tx.ClaimBlob(ctx, d, 7); return err }); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	cutoff := time.Now()
	time.Sleep(10 * time.Millisecond)

	var (
		deleting    = make(chan struct{})
		release     = make(chan struct{})
		claimDone   atomic.Bool
		linkDone    atomic.Bool
		swept       bool
		sweepErr    error
		claimErr    error
		linkErr     error
		wg          sync.WaitGroup
		claimIssued time.Time
	)
	wg.Go(func() {
		swept, sweepErr = a.SweepBlob(ctx, d, cutoff, func(context.Context) error {
			close(deleting)
			<-release
			return nil
		})
	})
	<-deleting
	claimIssued = time.Now()
	wg.Go(func() {
		claimErr = b.Update(ctx, func(tx metastore.Tx) error { _, err := tx.ClaimBlob(ctx, d, 7); return err })
		claimDone.Store(true)
	})
	wg.Go(func() {
		linkErr = b.Update(ctx, func(tx metastore.Tx) error { return tx.LinkBlob(ctx, "r", d, 7) })
		linkDone.Store(true)
	})
	time.Sleep(300 * time.Millisecond)
	if claimDone.Load() || linkDone.Load() {
		t.Errorf("while SweepBlob removed the blob: ClaimBlob returned %v, LinkBlob returned %v; want both waiting",
			claimDone.Load(), linkDone.Load())
	}
	close(release)
	wg.Wait()
	if !swept || sweepErr != nil {
		t.Errorf("SweepBlob = %v, %v; want true, nil", swept, sweepErr)
	}
	if claimErr != nil || linkErr != nil {
		t.Fatalf("ClaimBlob: %v; LinkBlob: %v", claimErr, linkErr)
	}
	// Neither was undone by the sweep: the blob is linked, and a sweep with a cutoff
	// before the claim keeps it even once unlinked.
	if size, err := a.Blob(ctx, "r", d); err != nil || size != 7 {
		t.Errorf("Blob after the link = %d, %v; want 7", size, err)
	}
	if err := a.Update(ctx, func(tx metastore.Tx) error { return tx.UnlinkBlob(ctx, "r", d) }); err != nil {
		t.Fatal(err)
	}
	if got, err := a.UnlinkedBlobs(ctx, "", 10); err != nil || !slices.Equal(got, []digest.Digest{d}) {
		t.Errorf("UnlinkedBlobs = %v, %v; want [%s]", got, err, d)
	}
	calls := 0
	ok, err := a.SweepBlob(ctx, d, claimIssued, func(context.Context) error { calls++; return nil })
	if ok || calls != 0 || err != nil {
		t.Errorf("SweepBlob with a cutoff before the waiting claim = %v, %d calls, %v; want false, 0, nil", ok, calls, err)
	}
}

// TestLinkAfterSweep has a sweep remove a blob after an Update's snapshot was taken and
// before the Update links the blob: the Update must start again, on a snapshot that does
// not see the removed row beside the one the link inserts.
func TestLinkAfterSweep(t *testing.T) {
	ctx := t.Context()
	dbURL := newDatabase(t)
	a, b := open(t, dbURL), open(t, dbURL)
	d := digest.FromString("swept, then linked")
	if err := a.Update(ctx, func(tx metastore.Tx) error { _, err := tx.ClaimBlob(ctx, d, 0); return err }); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	cutoff := time.Now()
	calls := 0
	err := b.Update(ctx, func(tx metastore.Tx) error {
		calls++
		if _, err := tx.Upload(ctx, "any"); !errors.Is(err, metastore.ErrNotFound) { // takes the snapshot
			return fmt.Errorf("Upload: %v", err)
		}
		if calls == 1 {
			ok, err := a.SweepBlob(ctx, d, cutoff, func(context.Context) error { return nil })
			if !ok || err != nil {
				return fmt.Errorf("SweepBlob = %v, %v; want true", ok, err)
			}
		}
		if err := tx.LinkBlob(ctx, "r", d, 7); err != nil {
			return err
		}
		if size, err := tx.Blob(ctx, "r", d); err != nil || size != 7 {
			return fmt.Errorf("in the Tx, Blob = %d, %v; want 7", size, err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if calls != 2 {
		t.Errorf("fn ran %d times, want 2: once before the sweep, once after", calls)
	}
	if size, err := a.Blob(ctx, "r", d); err != nil || size != 7 {
		t.Errorf("Blob = %d, %v; want 7", size, err)
	}
}

// TestClaimSizeGuess claims a blob of unknown size (0), then links it: the link records
// the real size, for the blob and the repository.
func TestClaimSizeGuess(t *testing.T) {
	ctx := t.Context()
	s := open(t, newDatabase(t))
	d := digest.FromString("claimed, size unknown")
	steps := []func(tx metastore.Tx) error{
		func(tx metastore.Tx) error { _, err := tx.ClaimBlob(ctx, d, 0); return err },
		func(tx metastore.Tx) error { return tx.LinkBlob(ctx, "r", d, 7) },
		func(tx metastore.Tx) error { return tx.LinkBlob(ctx, "other", d, 7) },
	}
	for _, step := range steps {
		if err := s.Update(ctx, step); err != nil {
			t.Fatal(err)
		}
	}
	for _, repo := range []string{"r", "other"} {
		if size, err := s.Blob(ctx, repo, d); err != nil || size != 7 {
			t.Errorf("Blob(%s) = %d, %v; want 7", repo, size, err)
		}
		if rp, err := s.Repository(ctx, repo); err != nil || rp.Size != 7 {
			t.Errorf("Repository(%s) = %+v, %v; want size 7", repo, rp, err)
		}
	}
	if err := s.Update(ctx, func(tx metastore.Tx) error { return tx.UnlinkBlob(ctx, "r", d) }); err != nil {
		t.Fatal(err)
	}
	if rp, err := s.Repository(ctx, "r"); err != nil || rp.Size != 0 {
		t.Errorf("Repository(r) after unlinking = %+v, %v; want size 0", rp, err)
	}
}

// graph is the world of TestReplicas: manifests of a repository, and what each names.
type graph struct {
	repo      string
	blobs     []digest.Digest
	manifests []*metastore.Manifest
	byDigest  map[digest.Digest]*metastore.Manifest
	tags      []string
}

func newGraph(repo string) *graph {
	g := &graph{repo: repo, byDigest: map[digest.Digest]*metastore.Manifest{}}
	for i := range 8 {
		g.blobs = append(g.blobs, digest.FromString(fmt.Sprint(repo, " blob ", i)))
	}
	var images []*metastore.Manifest
	for i := range int64(10) {
		m := storetest.Manifest(repo, i, g.blobs[i%8], g.blobs[(i+3)%8])
		images = append(images, m)
	}
	g.manifests = append(g.manifests, images...)
	for i := range int64(8) {
		m := storetest.Manifest(repo, 100+i, g.blobs[i%8])
		m.Subject = images[i%4].Digest
		m.ArtifactType = []string{"application/sbom", "application/sig"}[i%2]
		g.manifests = append(g.manifests, m)
	}
	for i := range 3 {
		ix := storetest.Manifest(repo, 200+int64(i))
		ix.MediaType = ocispec.MediaTypeImageIndex
		for _, c := range []*metastore.Manifest{images[i], images[i+1]} {
			ix.References = append(ix.References, metastore.Reference{Digest: c.Digest, Size: c.Size, Manifest: true})
		}
		g.manifests = append(g.manifests, ix)
	}
	for _, m := range g.manifests {
		g.byDigest[m.Digest] = m
	}
	for i := range 6 {
		g.tags = append(g.tags, fmt.Sprint("t", i))
	}
	return g
}

func (g *graph) pick(r *mrand.Rand) *metastore.Manifest { return g.manifests[r.IntN(len(g.manifests))] }

// TestReplicas has several stores on one database, as replicas, change the same
// repositories at once — pushes, tag moves, cascade deletes, links — and checks that
// what the stores answer afterwards agrees with a recomputation from the rows.
func TestReplicas(t *testing.T) {
	ctx := t.Context()
	dbURL := newDatabase(t)
	const replicas, workers, ops = 3, 4, 60
	var stores []*postgres.Store
	for range replicas {
		stores = append(stores, open(t, dbURL))
	}
	graphs := []*graph{newGraph("shared/a"), newGraph("shared/b")}

	var wg sync.WaitGroup
	for w := range replicas * workers {
		s := stores[w%replicas]
		r := mrand.New(mrand.NewPCG(uint64(w), 42))
		wg.Go(func() {
			for range ops {
				g := graphs[r.IntN(len(graphs))]
				if err := s.Update(ctx, randomOp(ctx, r, g)); err != nil && !errors.Is(err, metastore.ErrNotFound) {
					t.Errorf("Update: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	var retries int64
	for _, s := range stores {
		retries += s.TxStats().Retries
	}
	t.Logf("%d updates, %d retried after a conflict", replicas*workers*ops, retries)

	c := connect(t, dbURL)
	for _, g := range graphs {
		for _, s := range stores {
			checkGraph(t, c, s, g)
		}
	}
}

// randomOp returns an Update's fn doing one of the things a registry does to g.
func randomOp(ctx context.Context, r *mrand.Rand, g *graph) func(metastore.Tx) error {
	m, tag := g.pick(r), g.tags[r.IntN(len(g.tags))]
	blob := g.blobs[r.IntN(len(g.blobs))]
	switch r.IntN(8) {
	case 0: // a push: check, store, tag
		return func(tx metastore.Tx) error {
			if _, err := tx.MissingBlobs(ctx, g.repo, g.blobs); err != nil {
				return err
			}
			if err := tx.PutManifest(ctx, m); err != nil {
				return err
			}
			return tx.SetTag(ctx, g.repo, tag, m.Digest)
		}
	case 1:
		return func(tx metastore.Tx) error { return tx.PutManifest(ctx, m) }
	case 2: // a tag move, to a manifest that may be gone
		return func(tx metastore.Tx) error { return tx.SetTag(ctx, g.repo, tag, m.Digest) }
	case 3:
		return func(tx metastore.Tx) error { return tx.DeleteTag(ctx, g.repo, tag) }
	case 4: // a cascade: the manifest and its referrers, recursively
		return func(tx metastore.Tx) error { return cascade(ctx, tx, g.repo, m.Digest) }
	case 5:
		return func(tx metastore.Tx) error { return tx.DeleteManifest(ctx, g.repo, m.Digest) }
	case 6:
		return func(tx metastore.Tx) error { return tx.LinkBlob(ctx, g.repo, blob, int64(len(blob))) }
	default:
		return func(tx metastore.Tx) error { return tx.UnlinkBlob(ctx, g.repo, blob) }
	}
}

func cascade(ctx context.Context, tx metastore.Tx, repo string, d digest.Digest) error {
	refs, err := tx.Referrers(ctx, repo, d, "", "", 1000)
	if err != nil {
		return err
	}
	for _, ref := range refs {
		if err := cascade(ctx, tx, repo, ref.Digest); err != nil {
			return err
		}
	}
	return tx.DeleteManifest(ctx, repo, d)
}

// checkGraph compares what s answers about g's repository with the rows.
func checkGraph(t *testing.T, c *pgx.Conn, s *postgres.Store, g *graph) {
	t.Helper()
	ctx := t.Context()
	rp, err := s.Repository(ctx, g.repo)
	if err != nil {
		t.Fatalf("Repository(%s): %v", g.repo, err)
	}
	var manifests, tags, size int64
	err = c.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM manifests WHERE repo_id = r.id),
		(SELECT count(*) FROM tags WHERE repo_id = r.id),
		(SELECT COALESCE(sum(size), 0) FROM manifests WHERE repo_id = r.id) +
		(SELECT COALESCE(sum(b.size), 0) FROM repo_blobs rb JOIN blobs b ON b.digest = rb.digest WHERE rb.repo_id = r.id)
		FROM repos r WHERE r.name = $1`, g.repo).Scan(&manifests, &tags, &size)
	if err != nil {
		t.Fatal(err)
	}
	if rp.ManifestCount != manifests || rp.TagCount != tags || rp.Size != size {
		t.Errorf("Repository(%s) counts %d manifests, %d tags, %d bytes; the rows hold %d, %d, %d",
			g.repo, rp.ManifestCount, rp.TagCount, rp.Size, manifests, tags, size)
	}

	// The manifests, each with as many tags as name it.
	listed, err := s.Manifests(ctx, g.repo, metastore.Filter{}, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(listed)) != manifests {
		t.Errorf("Manifests(%s) lists %d, the rows hold %d", g.repo, len(listed), manifests)
	}
	present := map[digest.Digest]bool{}
	for _, m := range listed {
		present[m.Digest] = true
		named, err := s.TagsOf(ctx, g.repo, m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if m.TagCount != int64(len(named)) {
			t.Errorf("manifest %s counts %d tags, %d name it: %v", m.Digest, m.TagCount, len(named), named)
		}
	}
	// Every tag names a manifest that is there.
	all, err := s.Tags(ctx, g.repo, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(all)) != tags {
		t.Errorf("Tags(%s) lists %d, the rows hold %d", g.repo, len(all), tags)
	}
	for _, tag := range all {
		m, err := s.Tag(ctx, g.repo, tag)
		if err != nil || !present[m.Digest] {
			t.Errorf("tag %s names %v (%v), not a manifest of the repository", tag, m, err)
		}
	}
	// References are those of the manifests that are there, and only those.
	var orphans int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM manifest_refs mr JOIN repos r ON r.id = mr.repo_id
		WHERE r.name = $1 AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = mr.repo_id AND m.digest = mr.manifest)`,
		g.repo).Scan(&orphans); err != nil {
		t.Fatal(err)
	}
	if orphans != 0 {
		t.Errorf("%d references of manifests no longer in %s", orphans, g.repo)
	}
	for _, m := range g.manifests {
		var wantRefs, wantParents []digest.Digest
		for _, o := range g.manifests {
			if present[o.Digest] && o.Subject == m.Digest {
				wantRefs = append(wantRefs, o.Digest)
			}
			if present[o.Digest] && slices.ContainsFunc(o.References, func(r metastore.Reference) bool {
				return r.Manifest && r.Digest == m.Digest
			}) {
				wantParents = append(wantParents, o.Digest)
			}
		}
		refs, err := s.Referrers(ctx, g.repo, m.Digest, "", "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		var gotRefs []digest.Digest
		for _, d := range refs {
			gotRefs = append(gotRefs, d.Digest)
		}
		slices.Sort(wantRefs)
		if !slices.Equal(gotRefs, wantRefs) {
			t.Errorf("Referrers(%s) = %v, want %v", m.Digest, gotRefs, wantRefs)
		}
		parents, err := s.Parents(ctx, g.repo, m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(wantParents)
		if !slices.Equal(parents, wantParents) {
			t.Errorf("Parents(%s) = %v, want %v", m.Digest, parents, wantParents)
		}
	}
}

// TestReplicasSerializable has Updates on several stores each read how many tags there
// are and add the next: across replicas too, every count is read once.
func TestReplicasSerializable(t *testing.T) {
	ctx := t.Context()
	dbURL := newDatabase(t)
	stores := []*postgres.Store{open(t, dbURL), open(t, dbURL), open(t, dbURL)}
	m := storetest.Manifest("r", 0)
	if err := stores[0].Update(ctx, func(tx metastore.Tx) error { return tx.PutManifest(ctx, m) }); err != nil {
		t.Fatal(err)
	}
	const n = 30
	calls := atomic.Int64{}
	var wg sync.WaitGroup
	for i := range n {
		s := stores[i%len(stores)]
		wg.Go(func() {
			err := s.Update(ctx, func(tx metastore.Tx) error {
				calls.Add(1)
				tags, err := tx.Tags(ctx, "r", "", 1000)
				if err != nil {
					return err
				}
				return tx.SetTag(ctx, "r", fmt.Sprintf("n%03d", len(tags)), m.Digest)
			})
			if err != nil {
				t.Errorf("Update: %v", err)
			}
		})
	}
	wg.Wait()
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("n%03d", i))
	}
	if tags, err := stores[1].Tags(ctx, "r", "", 1000); err != nil || !slices.Equal(tags, want) {
		t.Errorf("Tags = %v, %v\nwant %v", tags, err, want)
	}
	if rp, err := stores[2].Repository(ctx, "r"); err != nil || rp.TagCount != n {
		t.Errorf("Repository counts %v tags (%v), want %d", rp, err, n)
	}
	t.Logf("%d updates ran fn %d times", n, calls.Load())
}

// TestConflictingUpdatesCommit has Updates on several stores that all conflict with
// each other — each reads the repository's counters, which each changes — with few
// attempts allowed: those that keep losing run alone, and every Update commits.
func TestConflictingUpdatesCommit(t *testing.T) {
	ctx := t.Context()
	dbURL := newDatabase(t)
	stores := []*postgres.Store{open(t, dbURL), open(t, dbURL), open(t, dbURL)}
	for _, s := range stores {
		s.SetAttempts(2, 4)
	}
	const clients, updates = 24, 5
	var wg sync.WaitGroup
	for c := range clients {
		s := stores[c%len(stores)]
		wg.Go(func() {
			for u := range updates {
				m := storetest.Manifest("r", int64(c*updates+u))
				err := s.Update(ctx, func(tx metastore.Tx) error {
					rp, err := tx.Repository(ctx, "r")
					if err != nil && !errors.Is(err, metastore.ErrNotFound) {
						return err
					}
					if err := tx.PutManifest(ctx, m); err != nil {
						return err
					}
					if rp == nil {
						return nil
					}
					return tx.SetTag(ctx, "r", fmt.Sprint("after-", rp.ManifestCount), m.Digest)
				})
				if err != nil {
					t.Errorf("Update: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	var escalations int64
	for _, s := range stores {
		escalations += s.TxStats().Alone
	}
	t.Logf("%d updates, %d attempts run alone", clients*updates, escalations)
	rp, err := stores[0].Repository(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	// Serializable: every Update saw a different count, so each added a tag but the
	// first, which saw no repository.
	if rp.ManifestCount != clients*updates || rp.TagCount != clients*updates-1 {
		t.Errorf("Repository counts %d manifests, %d tags; want %d, %d", rp.ManifestCount, rp.TagCount, clients*updates, clients*updates-1)
	}
}

// BenchmarkPutManifest is the metadata side of a manifest push, from 16 clients per CPU
// spread over 1 or 3 stores on one database (replicas): check the manifest's blobs,
// store it, move its tag, in one Update. retries/op counts the attempts that
// conflicted.
func BenchmarkPutManifest(b *testing.B) {
	benchmarkPut(b, false)
}

// BenchmarkPutManifestAsRegistry is BenchmarkPutManifest with the reads the registry's
// push transaction adds: the repository's attributes and the tag's current manifest.
func BenchmarkPutManifestAsRegistry(b *testing.B) {
	benchmarkPut(b, true)
}

func benchmarkPut(b *testing.B, asRegistry bool) {
	for _, replicas := range []int{1, 3} {
		b.Run(fmt.Sprint("replicas=", replicas), func(b *testing.B) {
			dbURL := newDatabase(b)
			var stores []metastore.Store
			var pgs []*postgres.Store
			for range replicas {
				s := open(b, dbURL)
				stores, pgs = append(stores, s), append(pgs, s)
			}
			storetest.BenchmarkPut(b, stores, asRegistry)
			b.StopTimer()
			var retries, alone, trips, stmts int64
			for _, s := range pgs {
				st := s.TxStats()
				retries, alone, trips, stmts = retries+st.Retries, alone+st.Alone, trips+st.RoundTrips, stmts+st.Statements
			}
			b.ReportMetric(float64(retries)/float64(b.N), "retries/op")
			b.ReportMetric(float64(alone)/float64(b.N), "alone/op")
			// Setting up counts too: one transaction, for the whole run.
			b.ReportMetric(float64(trips)/float64(b.N), "roundtrips/op")
			b.ReportMetric(float64(stmts)/float64(b.N), "statements/op")
		})
	}
}

func BenchmarkTaggedManifest(b *testing.B) {
	storetest.BenchmarkTaggedManifest(b, open(b, newDatabase(b)))
}

func BenchmarkReferrers(b *testing.B) {
	storetest.BenchmarkReferrers(b, func(b *testing.B) metastore.Store { return open(b, newDatabase(b)) })
}

func BenchmarkTagArtifacts(b *testing.B) {
	storetest.BenchmarkTagArtifacts(b, func(b *testing.B) metastore.Store { return open(b, newDatabase(b)) })
}

// TestTagEdgesLock holds a transaction open after it moved a tag-schema tag, and has
// another store delete a manifest of the same repository meanwhile. The delete must
// wait for the lock on the repository's tag-schema edges: a delete cascades through
// those edges in the order opposite to a tag move's, and without the lock the two
// deadlocked. A delete in another repository must not wait.
func TestTagEdgesLock(t *testing.T) {
	ctx := t.Context()
	dbURL := newDatabase(t)
	a, b := open(t, dbURL), open(t, dbURL)
	subject, sig, other := storetest.Manifest("r", 1), storetest.Manifest("r", 2), storetest.Manifest("r", 3)
	elsewhere := storetest.Manifest("q", 4)
	for _, m := range []*metastore.Manifest{subject, sig, other, elsewhere} {
		if err := a.Update(ctx, func(tx metastore.Tx) error { return tx.PutManifest(ctx, m) }); err != nil {
			t.Fatal(err)
		}
	}
	schemaTag := "sha256-" + subject.Digest.Encoded() + ".sig"

	release, moveErr := holdUpdate(t, a, func(tx metastore.Tx) error {
		return tx.SetTag(ctx, "r", schemaTag, sig.Digest)
	}, nil)
	deleteErr := make(chan error, 1)
	go func() {
		deleteErr <- b.Update(ctx, func(tx metastore.Tx) error { return tx.DeleteManifest(ctx, "r", other.Digest) })
	}()

	awaitAdvisoryWait(t, dbURL, deleteErr, "DeleteManifest in r", "another transaction held r's tag-schema edges")

	// Another repository's edges are another lock.
	elsewhereCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := b.Update(elsewhereCtx, func(tx metastore.Tx) error { return tx.DeleteManifest(elsewhereCtx, "q", elsewhere.Digest) }); err != nil {
		t.Fatalf("DeleteManifest in q while r's edges were held: %v", err)
	}

	release()
	if err := <-moveErr; err != nil {
		t.Fatalf("SetTag %s: %v", schemaTag, err)
	}
	if err := <-deleteErr; err != nil {
		t.Fatalf("DeleteManifest in r: %v", err)
	}
	if m, err := a.Tag(ctx, "r", schemaTag); err != nil || m.Digest != sig.Digest {
		t.Errorf("tag %s = %v; want %s", schemaTag, err, sig.Digest)
	}
	if _, err := a.Manifest(ctx, "r", other.Digest); !errors.Is(err, metastore.ErrNotFound) {
		t.Errorf("manifest %s after its delete: %v; want ErrNotFound", other.Digest, err)
	}
}

// TestPullsCommute has three stores (replicas) record the pulls of the same manifests
// and tags at once, many times over: no call may fail, since pull times only move
// forward and RecordPulls waits for a concurrent one rather than conflict with it, and
// each manifest ends with the latest time any store recorded.
func TestPullsCommute(t *testing.T) {
	ctx := t.Context()
	dbURL := newDatabase(t)
	stores := []*postgres.Store{open(t, dbURL), open(t, dbURL), open(t, dbURL)}
	var ms []*metastore.Manifest
	for i := range 50 {
		m := storetest.Manifest("r", int64(i))
		ms = append(ms, m)
		if err := stores[0].Update(ctx, func(tx metastore.Tx) error {
			if err := tx.PutManifest(ctx, m); err != nil {
				return err
			}
			return tx.SetTag(ctx, "r", fmt.Sprint("t", i), m.Digest)
		}); err != nil {
			t.Fatal(err)
		}
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const rounds = 20
	var wg sync.WaitGroup
	for si, s := range stores {
		wg.Go(func() {
			for round := range rounds {
				at := base.Add(time.Duration(round*len(stores)+si) * time.Second)
				var ps []metastore.Pull
				for i, m := range ms { // in one order, as FlushPulls sorts them
					ps = append(ps, metastore.Pull{Repo: "r", Digest: m.Digest, Tag: fmt.Sprint("t", i), At: at})
				}
				if err := s.RecordPulls(ctx, ps); err != nil {
					t.Errorf("store %d, round %d: RecordPulls: %v", si, round, err)
					return
				}
			}
		})
	}
	wg.Wait()
	want := base.Add(time.Duration((rounds-1)*len(stores)+len(stores)-1) * time.Second)
	for _, m := range ms {
		got, err := stores[1].Manifest(ctx, "r", m.Digest)
		if err != nil || !got.LastPulled.Equal(want) {
			t.Fatalf("manifest %s: last pulled %v, %v; want %v", m.Digest, got.LastPulled, err, want)
		}
	}
	for _, s := range stores {
		if st := s.TxStats(); st.Retries != 0 {
			t.Errorf("%d retries; want none", st.Retries)
		}
	}
}

// holdUpdate starts an Update on s that runs first, then holds its transaction open
// until release is called (or the test ends), then runs then (when not nil). It returns
// once first is done; the Update's error arrives on done.
func holdUpdate(t *testing.T, s *postgres.Store, first, then func(metastore.Tx) error) (release func(), done <-chan error) {
	t.Helper()
	held, released, errc := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	release = sync.OnceFunc(func() { close(released) })
	// Whatever ends the test, the held transaction ends too, and the stores can close.
	t.Cleanup(release)
	var once sync.Once
	go func() {
		errc <- s.Update(t.Context(), func(tx metastore.Tx) error {
			if err := first(tx); err != nil {
				return err
			}
			once.Do(func() { close(held) })
			<-released
			if then == nil {
				return nil
			}
			return then(tx)
		})
	}()
	select {
	case <-held:
	case err := <-errc:
		t.Fatalf("the Update to hold: %v", err)
	}
	return release, errc
}

// awaitAdvisoryWait returns once a transaction in the test's database is seen waiting on
// an advisory lock. It fails the test should what was to wait (what) return on done
// first, while holder held the lock, or should neither happen within 30 s.
func awaitAdvisoryWait(t *testing.T, dbURL string, done <-chan error, what, holder string) {
	t.Helper()
	ctx := t.Context()
	watch := connect(t, dbURL)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var waiting int
		err := watch.QueryRow(ctx, `SELECT count(*) FROM pg_locks
			WHERE locktype = 'advisory' AND NOT granted
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			return
		}
		select {
		case err := <-done:
			t.Fatalf("%s returned (%v) while %s; want it waiting", what, err, holder)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s neither waited on an advisory lock nor returned within 30 s", what)
		}
	}
}

// TestPullFlushWaitsForAloneUpdate has an Update run alone, allowed one attempt, and
// another store flush a pull of the tag that Update reads and then moves. The flush must
// wait for the Update: an Update runs alone after repeated conflicts so that nothing
// can fail it again, and a flush that changed the tag's row in between would (a
// serializable transaction may not update a row changed since its snapshot).
func TestPullFlushWaitsForAloneUpdate(t *testing.T) {
	ctx := t.Context()
	dbURL := newDatabase(t)
	a, b := open(t, dbURL), open(t, dbURL)
	a.SetAttempts(0, 1)
	m1, m2 := storetest.Manifest("r", 1), storetest.Manifest("r", 2)
	if err := b.Update(ctx, func(tx metastore.Tx) error {
		if err := tx.PutManifest(ctx, m1); err != nil {
			return err
		}
		if err := tx.PutManifest(ctx, m2); err != nil {
			return err
		}
		return tx.SetTag(ctx, "r", "t", m1.Digest)
	}); err != nil {
		t.Fatal(err)
	}

	release, updateErr := holdUpdate(t, a, func(tx metastore.Tx) error {
		_, err := tx.Tag(ctx, "r", "t") // the snapshot
		return err
	}, func(tx metastore.Tx) error {
		return tx.SetTag(ctx, "r", "t", m2.Digest)
	})
	flushErr := make(chan error, 1)
	pulled := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	go func() {
		flushErr <- b.RecordPulls(ctx, []metastore.Pull{{Repo: "r", Digest: m1.Digest, Tag: "t", At: pulled}})
	}()
	awaitAdvisoryWait(t, dbURL, flushErr, "RecordPulls", "an Update ran alone")

	release()
	if err := <-updateErr; err != nil {
		t.Fatalf("Update run alone, one attempt: %v", err)
	}
	if err := <-flushErr; err != nil {
		t.Fatalf("RecordPulls: %v", err)
	}
	if m, err := a.Tag(ctx, "r", "t"); err != nil || m.Digest != m2.Digest {
		t.Errorf("tag t = %v, %v; want %s", m, err, m2.Digest)
	}
	if m, err := a.Manifest(ctx, "r", m1.Digest); err != nil || !m.LastPulled.Equal(pulled) {
		t.Errorf("manifest %s: %v, %v; want last pulled %v", m1.Digest, m, err, pulled)
	}
}
