// Package scaletest gives tests a fresh scale-out deployment on the real S3-compatible
// server and PostgreSQL that ../shared/services/{s3,postgres}.sh start: a key prefix of
// its own in the bucket and a database of its own, dropped when the test ends.
//
// Without the servers' variables (GRAFT_TEST_S3_ENDPOINT, GRAFT_TEST_POSTGRES_URL) the
// test is skipped, saying how to start them; scripts/test.sh always starts them.
package scaletest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/graft-registry/graft/internal/config"
	"github.com/graft-registry/graft/internal/metastore/postgres"
)

// S3 is where a test keeps blobs.
type S3 struct {
	Endpoint, Region, Bucket, Prefix string
	AccessKey, SecretKey             string
}

func id() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// NewS3 returns a fresh prefix in the test bucket.
func NewS3(t testing.TB) S3 {
	t.Helper()
	endpoint := os.Getenv("GRAFT_TEST_S3_ENDPOINT")
	if endpoint == "" {
		t.Skip("no S3 server: eval \"$(../shared/services/s3.sh start)\" sets GRAFT_TEST_S3_ENDPOINT")
	}
	region := os.Getenv("GRAFT_TEST_S3_REGION")
	if region == "" {
		region = "us-east-1"
	}
	return S3{
		Endpoint:  endpoint,
		Region:    region,
		Bucket:    os.Getenv("GRAFT_TEST_S3_BUCKET"),
		Prefix:    "test-" + id() + "/",
		AccessKey: os.Getenv("AWS_ACCESS_KEY_ID"),
		SecretKey: os.Getenv("AWS_SECRET_ACCESS_KEY"),
	}
}

// NewPostgres returns the URL of a fresh database, dropped when the test ends.
func NewPostgres(t testing.TB) string {
	t.Helper()
	base := os.Getenv("GRAFT_TEST_POSTGRES_URL")
	if base == "" {
		t.Skip("no PostgreSQL: eval \"$(../shared/services/postgres.sh start)\" sets GRAFT_TEST_POSTGRES_URL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("PostgreSQL at GRAFT_TEST_POSTGRES_URL: %v", err)
	}
	defer admin.Close(ctx)
	name := "graft_test_" + id()
	if err := create(ctx, admin, base, name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("drop database %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("GRAFT_TEST_POSTGRES_URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// template is the name of a database with graft's schema, which each test's database
// copies: the schema's migrations took half a second of every scale-out test. "" when
// it could not be made; the databases then start empty, and graft migrates them.
var template struct {
	once sync.Once
	name string
}

// templateLock is the key of the advisory lock that the process making the template
// holds exclusively while it is connected to it, and the copies shared: PostgreSQL
// copies no database another session is connected to.
const templateLock = `1735549399`

// create creates database name on the server of admin (whose URL is base), as a copy
// of the template when there is one.
func create(ctx context.Context, admin *pgx.Conn, base, name string) error {
	template.once.Do(func() { template.name = makeTemplate(ctx, admin, base) })
	if template.name == "" {
		_, err := admin.Exec(ctx, "CREATE DATABASE "+name)
		return err
	}
	if _, err := admin.Exec(ctx, "SELECT pg_advisory_lock_shared("+templateLock+")"); err != nil {
		return err
	}
	defer admin.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock_shared("+templateLock+")")
	_, err := admin.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE "+template.name)
	return err
}

// makeTemplate makes, or brings up to date, the template database of this schema
// version, kept between runs, and returns its name; "" when it failed.
func makeTemplate(ctx context.Context, admin *pgx.Conn, base string) string {
	name := fmt.Sprintf("graft_test_template_v%d", postgres.SchemaVersion)
	if _, err := admin.Exec(ctx, "SELECT pg_advisory_lock("+templateLock+")"); err != nil {
		return ""
	}
	defer admin.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock("+templateLock+")")
	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return ""
	}
	if !exists {
		if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
			return ""
		}
	}
	u, err := url.Parse(base)
	if err != nil {
		return ""
	}
	u.Path = "/" + name
	m, err := postgres.Open(ctx, postgres.Options{URL: u.String(), MaxConns: 2})
	if err != nil {
		return ""
	}
	m.Close()
	return name
}

// Config returns a configuration of a fresh scale-out deployment: blobs in S3,
// metadata in PostgreSQL.
func Config(t testing.TB) *config.Config {
	t.Helper()
	s3 := NewS3(t)
	c := config.Default()
	c.DataDir = t.TempDir() // unused by the scale-out stores, but must be set
	c.Storage.S3.Endpoint = s3.Endpoint
	c.Storage.S3.Region = s3.Region
	c.Storage.S3.Bucket = s3.Bucket
	c.Storage.S3.Prefix = s3.Prefix
	c.Storage.S3.ForcePathStyle = true
	c.Storage.S3.AccessKey = s3.AccessKey
	c.Storage.S3.SecretKey = s3.SecretKey
	c.Metadata.Postgres.URL = NewPostgres(t)
	return &c
}

// YAML is c's scale-out settings as a configuration file's content.
func YAML(c *config.Config) string {
	s := c.Storage.S3
	return fmt.Sprintf(`storage:
  s3:
    endpoint: %s
    region: %s
    bucket: %s
    prefix: %s
    forcePathStyle: true
    accessKey: %s
    secretKey: %s
    redirect: %v
metadata:
  postgres:
    url: %s
`, s.Endpoint, s.Region, s.Bucket, s.Prefix, s.AccessKey, s.SecretKey, s.Redirect, c.Metadata.Postgres.URL)
}
