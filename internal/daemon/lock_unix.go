//go:build unix

package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// LockFile is the file in the data directory that graft serve holds an exclusive
// lock on while it runs, with its process id in it.
const LockFile = "graft.lock"

// ErrDataDirInUse is the error of a graft serve whose data directory another one
// serves.
var ErrDataDirInUse = errors.New("is in use by another graft serve")

// lockDataDir takes the lock of data directory dir, which must exist, for as long as
// the process runs or until release. Two servers on one embedded data directory would
// each think they are its only writer: the second fails at once, naming the first.
// The admin verbs (gc, token, migrate) take no lock: they work beside a server, as
// the stores allow.
func lockDataDir(dir string) (release func(), err error) {
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			holder := "unknown"
			if b, rerr := os.ReadFile(path); rerr == nil {
				if pid, perr := strconv.Atoi(string(bytes.TrimSpace(b))); perr == nil {
					holder = strconv.Itoa(pid)
				}
			}
			return nil, fmt.Errorf("the data directory %s %w (pid %s); stop it first, or give this one another --data-dir",
				dir, ErrDataDirInUse, holder)
		}
		return nil, fmt.Errorf("data dir: lock %s: %w", path, err)
	}
	// The lock is ours: say whose it is, for the next one.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { f.Close() }, nil
}
