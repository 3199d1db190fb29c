package auth

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$`)

// ValidName reports whether name can be a user or token name. It travels as the user
// part of Basic credentials, so it has no colon; it goes into tokens and logs, so it
// has no spaces or control characters.
func ValidName(name string) bool { return nameRe.MatchString(name) }

// DefaultCost is the bcrypt cost of the passwords graft hashes.
const DefaultCost = bcrypt.DefaultCost

// HashPassword hashes password with bcrypt, as htpasswd -B does.
func HashPassword(password string, cost int) (string, error) {
	if password == "" {
		return "", errors.New("the password is empty")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if errors.Is(err, bcrypt.ErrPasswordTooLong) {
		return "", errors.New("the password is longer than bcrypt's 72 bytes")
	}
	return string(h), err
}

// isBcrypt reports whether h looks like a bcrypt hash: the only kind graft accepts,
// since htpasswd's MD5 and SHA-1 forms are cheap to brute-force.
func isBcrypt(h string) bool {
	_, err := bcrypt.Cost([]byte(h))
	return err == nil
}

// ReadHtpasswd reads the users of an htpasswd file: name:bcrypt-hash lines; blank
// lines and # comments are skipped. An entry of another hash kind is an error that
// names its line, never its hash.
func ReadHtpasswd(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("htpasswd: %w", err)
	}
	return parseHtpasswd(path, b)
}

func parseHtpasswd(path string, b []byte) (map[string]string, error) {
	users := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, hash, ok := strings.Cut(line, ":")
		switch {
		case !ok || !ValidName(name):
			return nil, fmt.Errorf("htpasswd %s: line %d is not name:hash with a valid user name", path, n)
		case !isBcrypt(hash):
			return nil, fmt.Errorf("htpasswd %s: line %d (%s) is not a bcrypt hash; create it with `graft user add` or htpasswd -B", path, n, name)
		case users[name] != "":
			return nil, fmt.Errorf("htpasswd %s: line %d: user %s is there twice", path, n, name)
		}
		users[name] = hash
	}
	return users, sc.Err()
}

// SetPassword sets the password of user name in the htpasswd file at path, adding
// the user (and the file, readable by its owner only) when needed. It reports whether
// the user is new. The file is replaced atomically, so a server reading it never sees
// half of it.
func SetPassword(path, name, password string, cost int) (bool, error) {
	if !ValidName(name) {
		return false, fmt.Errorf("%q is not a valid user name: letters, digits, . _ @ -, starting with a letter or digit", clip(name))
	}
	hash, err := HashPassword(password, cost)
	if err != nil {
		return false, err
	}
	added := true
	err = rewriteHtpasswd(path, func(lines []string) []string {
		for i, l := range lines {
			if n, _, ok := strings.Cut(strings.TrimSpace(l), ":"); ok && n == name {
				lines[i] = name + ":" + hash
				added = false
				return lines
			}
		}
		return append(lines, name+":"+hash)
	})
	return added, err
}

// RemoveUser removes user name from the htpasswd file at path.
func RemoveUser(path, name string) error {
	found := false
	err := rewriteHtpasswd(path, func(lines []string) []string {
		out := lines[:0]
		for _, l := range lines {
			if n, _, ok := strings.Cut(strings.TrimSpace(l), ":"); ok && n == name {
				found = true
				continue
			}
			out = append(out, l)
		}
		return out
	})
	if err == nil && !found {
		return fmt.Errorf("htpasswd %s: no user %s", path, name)
	}
	return err
}

func rewriteHtpasswd(path string, edit func([]string) []string) error {
	mode := fs.FileMode(0o600)
	var lines []string
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if _, err := parseHtpasswd(path, b); err != nil {
			return err
		}
		if fi, err := os.Stat(path); err == nil {
			mode = fi.Mode().Perm()
		}
		lines = strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) == 1 && lines[0] == "" {
			lines = nil
		}
	case errors.Is(err, fs.ErrNotExist):
	default:
		return fmt.Errorf("htpasswd: %w", err)
	}
	lines = edit(lines)
	out := strings.Join(lines, "\n")
	if out != "" {
		out += "\n"
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("htpasswd: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("htpasswd: %w", err)
	}
	if _, err := tmp.WriteString(out); err != nil {
		tmp.Close()
		return fmt.Errorf("htpasswd: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("htpasswd: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("htpasswd: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("htpasswd: %w", err)
	}
	return nil
}

// userDB is the users' password hashes: those of the configuration and those of the
// htpasswd file, which is read again when it changes, so that `graft user add`
// takes effect without a restart.
type userDB struct {
	static map[string]string
	path   string
	log    *slog.Logger

	// staticCost and fileCost are the highest bcrypt costs of static and file
	staticCost int

	mu       sync.Mutex
	file     map[string]string
	fileCost int
	stamp    fileStamp
	checked  time.Time
}

type fileStamp struct {
	mod  time.Time
	size int64
}

// recheck is how often the htpasswd file is looked at for changes, at most.
const recheck = time.Second

func newUserDB(static map[string]string, path string, log *slog.Logger) (*userDB, error) {
	db := &userDB{static: static, path: path, log: log, file: map[string]string{}, staticCost: maxCost(static)}
	if path == "" {
		return db, nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("htpasswd: %w", err)
	}
	users, err := ReadHtpasswd(path)
	if err != nil {
		return nil, err
	}
	for name := range users {
		if _, ok := static[name]; ok {
			return nil, fmt.Errorf("user %s is both in auth.users and in %s", name, path)
		}
	}
	db.file, db.stamp, db.checked = users, fileStamp{fi.ModTime(), fi.Size()}, time.Now()
	db.fileCost = maxCost(users)
	return db, nil
}

// hash returns the password hash of user name.
func (db *userDB) hash(name string) (string, bool) {
	if h, ok := db.static[name]; ok {
		return h, true
	}
	if db.path == "" {
		return "", false
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	db.reload()
	h, ok := db.file[name]
	return h, ok
}

func (db *userDB) reload() {
	now := time.Now()
	if now.Sub(db.checked) < recheck {
		return
	}
	db.checked = now
	fi, err := os.Stat(db.path)
	if err != nil {
		db.log.Warn("htpasswd file unreadable; keeping the users read before", "path", db.path, "err", err)
		return
	}
	if (fileStamp{fi.ModTime(), fi.Size()}) == db.stamp {
		return
	}
	users, err := ReadHtpasswd(db.path)
	if err != nil {
		db.log.Warn("htpasswd file invalid; keeping the users read before", "err", err)
		return
	}
	for name := range users {
		if _, ok := db.static[name]; ok {
			db.log.Warn("user in both auth.users and the htpasswd file: the configuration's entry counts", "user", name)
			delete(users, name)
		}
	}
	db.file, db.stamp = users, fileStamp{fi.ModTime(), fi.Size()}
	db.fileCost = maxCost(users)
	db.log.Info("htpasswd file read again", "path", db.path, "users", len(users))
}

// cost is the highest bcrypt cost of the users' hashes (DefaultCost without users):
// a failed login of a name that is no user's costs as much, so that no user's
// failures take longer than a stranger's.
func (db *userDB) cost() int {
	c := db.staticCost
	if db.path != "" {
		db.mu.Lock()
		db.reload()
		c = max(c, db.fileCost)
		db.mu.Unlock()
	}
	if c == 0 {
		return DefaultCost
	}
	return c
}

// maxCost is the highest bcrypt cost of hashes, 0 for none.
func maxCost(hashes map[string]string) int {
	c := 0
	for _, h := range hashes {
		if n, err := bcrypt.Cost([]byte(h)); err == nil {
			c = max(c, n)
		}
	}
	return c
}

// names returns every user name.
func (db *userDB) names() []string {
	var out []string
	for n := range db.static {
		out = append(out, n)
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	for n := range db.file {
		out = append(out, n)
	}
	return out
}
