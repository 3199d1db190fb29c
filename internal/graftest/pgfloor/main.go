// Command pgfloor is the least a scale-out replica can do for a manifest request: one
// PostgreSQL statement, in a transaction of its own, nothing cached and nothing
// checked. bench/scaleout.sh runs one and three of it behind rrproxy, as it runs graft's
// replicas, so that what three processes sharing the cores cost shows apart from
// anything graft does.
//
//	pgfloor -db URL [-listen 127.0.0.1:0]
//
// It answers what regbench's manifest scenarios ask: GET /v2/; blob uploads, whose
// bytes it drops (the scenarios push two small blobs, untimed, and a replica behind the
// proxy may see a session's PUT without its POST); and PUT and GET of a manifest by
// tag, one statement each on the table it creates. It prints "listening on ADDR" on
// stdout once it accepts connections.
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"runtime"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	db := flag.String("db", "", "PostgreSQL URL")
	flag.Parse()
	if *db == "" {
		log.Fatal("pgfloor: -db is required")
	}
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(*db)
	if err != nil {
		log.Fatalf("pgfloor: %v", err)
	}
	cfg.MaxConns = int32(16 * runtime.GOMAXPROCS(0)) // graft's default per replica
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		log.Fatalf("pgfloor: %v", err)
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS floor_manifests (
		repo text, tag text, digest text NOT NULL, media_type text NOT NULL, body bytea NOT NULL,
		PRIMARY KEY (repo, tag))`); err != nil {
		log.Fatalf("pgfloor: create table: %v", err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("pgfloor: %v", err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	log.Fatal(http.Serve(ln, &floor{pool}))
}

type floor struct{ db *pgxpool.Pool }

func (f *floor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if p == "/v2/" || p == "/v2" {
		return
	}
	if i := strings.LastIndex(p, "/blobs/uploads/"); i > 0 && strings.HasPrefix(p, "/v2/") {
		switch r.Method {
		case http.MethodPost:
			b := make([]byte, 8)
			rand.Read(b)
			w.Header().Set("Location", p[:i]+"/blobs/uploads/"+hex.EncodeToString(b))
			w.WriteHeader(http.StatusAccepted)
		case http.MethodPut:
			io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusCreated)
		default:
			w.WriteHeader(http.StatusMethodNotAllowed)
		}
		return
	}
	i := strings.LastIndex(p, "/manifests/")
	if i < 0 || !strings.HasPrefix(p, "/v2/") {
		http.NotFound(w, r)
		return
	}
	repo, tag := p[len("/v2/"):i], p[i+len("/manifests/"):]
	ctx := r.Context()
	switch r.Method {
	case http.MethodPut:
		body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		sum := sha256.Sum256(body)
		d := "sha256:" + hex.EncodeToString(sum[:])
		if _, err := f.db.Exec(ctx, `INSERT INTO floor_manifests (repo, tag, digest, media_type, body)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (repo, tag) DO UPDATE
			SET digest = excluded.digest, media_type = excluded.media_type, body = excluded.body`,
			repo, tag, d, r.Header.Get("Content-Type"), body); err != nil {
			log.Printf("pgfloor: put %s:%s: %v", repo, tag, err)
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Docker-Content-Digest", d)
		w.Header().Set("Location", p[:i]+"/manifests/"+d)
		w.WriteHeader(http.StatusCreated)
	case http.MethodGet, http.MethodHead:
		var d, mt string
		var body []byte
		err := f.db.QueryRow(ctx, `SELECT digest, media_type, body FROM floor_manifests WHERE repo = $1 AND tag = $2`,
			repo, tag).Scan(&d, &mt, &body)
		if errors.Is(err, pgx.ErrNoRows) {
			http.NotFound(w, r)
			return
		}
		if err != nil {
			log.Printf("pgfloor: get %s:%s: %v", repo, tag, err)
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Docker-Content-Digest", d)
		w.Header().Set("Content-Type", mt)
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		if r.Method == http.MethodGet {
			w.Write(body)
		}
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}
