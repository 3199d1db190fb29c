// Package drivers compares the two SQLite drivers for Go on the queries graft's
// metadata store runs most: a GET by tag (a join ending in the manifest's content), a
// group of writes committed together, and the cost floor of one prepared statement.
// It is a module of its own so that graft itself depends on one driver only.
//
//	cd bench/sqlite-drivers && go test -bench . -benchtime 3s -count 2
package drivers

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	_ "github.com/mattn/go-sqlite3"
	_ "modernc.org/sqlite"
)

const schema = `CREATE TABLE repos (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, n INTEGER NOT NULL DEFAULT 0);
CREATE TABLE manifests (id INTEGER PRIMARY KEY, repo_id INTEGER NOT NULL, digest TEXT NOT NULL, media_type TEXT NOT NULL, size INTEGER NOT NULL, content BLOB NOT NULL, UNIQUE(repo_id, digest));
CREATE TABLE tags (repo_id INTEGER NOT NULL, name TEXT NOT NULL, manifest_id INTEGER NOT NULL, PRIMARY KEY (repo_id, name)) WITHOUT ROWID;`

func open(b *testing.B, driver string) *sql.DB {
	p := filepath.Join(b.TempDir(), "x.db")
	dsn := "file:" + p + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)"
	if driver == "sqlite3" {
		dsn = "file:" + p + "?_journal_mode=WAL&_synchronous=FULL"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(schema); err != nil {
		b.Fatal(err)
	}
	db.Exec(`INSERT INTO repos(name) VALUES ('r')`)
	return db
}

func BenchmarkDrivers(b *testing.B) {
	content := make([]byte, 600)
	for _, drv := range []string{"sqlite", "sqlite3"} {
		b.Run(drv+"/point-select", func(b *testing.B) {
			db := open(b, drv)
			for i := 0; i < 1000; i++ {
				db.Exec(`INSERT INTO manifests(repo_id,digest,media_type,size,content) VALUES (1,?,?,?,?)`, fmt.Sprint("d", i), "mt", 600, content)
				db.Exec(`INSERT INTO tags VALUES (1, ?, ?)`, fmt.Sprint("t", i), i+1)
			}
			st, _ := db.Prepare(`SELECT m.digest, m.media_type, m.size, m.content FROM repos r JOIN tags t ON t.repo_id = r.id JOIN manifests m ON m.id = t.manifest_id WHERE r.name = ? AND t.name = ?`)
			var d, mt string
			var sz int64
			var c []byte
			i := 0
			for b.Loop() {
				if err := st.QueryRow("r", fmt.Sprint("t", i%1000)).Scan(&d, &mt, &sz, &c); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		b.Run(drv+"/tx-of-20-writes", func(b *testing.B) {
			db := open(b, drv)
			conn, _ := db.Conn(b.Context())
			ins, _ := conn.PrepareContext(b.Context(), `INSERT INTO manifests(repo_id,digest,media_type,size,content) VALUES (1,?,?,?,?) RETURNING id`)
			tag, _ := conn.PrepareContext(b.Context(), `INSERT INTO tags VALUES (1, ?, ?)`)
			sel, _ := conn.PrepareContext(b.Context(), `SELECT id FROM repos WHERE name = ?`)
			upd, _ := conn.PrepareContext(b.Context(), `UPDATE repos SET n = n + 1 WHERE id = ?`)
			begin, _ := conn.PrepareContext(b.Context(), `BEGIN IMMEDIATE`)
			commit, _ := conn.PrepareContext(b.Context(), `COMMIT`)
			i := 0
			for b.Loop() {
				begin.Exec()
				for j := 0; j < 20; j++ {
					var id, rid int64
					sel.QueryRow("r").Scan(&rid)
					ins.QueryRow(fmt.Sprint("x", i), "mt", 600, content).Scan(&id)
					tag.Exec(fmt.Sprint("x", i), id)
					upd.Exec(rid)
					i++
				}
				if _, err := commit.Exec(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkFloor(b *testing.B) {
	for _, drv := range []string{"sqlite", "sqlite3"} {
		b.Run(drv, func(b *testing.B) {
			db := open(b, drv)
			st, _ := db.Prepare(`SELECT id FROM repos WHERE name = ?`)
			var id int64
			for b.Loop() {
				st.QueryRow("r").Scan(&id)
			}
		})
	}
}
