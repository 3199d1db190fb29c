// Package graftest starts real `graft serve` processes for end-to-end tests: the
// binary is built once per test process (with the race detector when the tests run
// with it) and each server listens on a free loopback port with a data directory of
// its own. A Server is also a client of its API (apitest.Client).
package graftest

import (
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/graft-registry/graft/internal/apitest"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary returns the path of a graft binary built from this module. Every test
// process builds it again (go's build cache makes that quick), into one directory per
// user, and installs it by rename so that processes running at once never see a
// partial file.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		// One directory per user and checkout: test processes of two checkouts at
		// once must never run each other's binary.
		wd, _ := os.Getwd()
		sum := sha256.Sum256([]byte(moduleRoot(wd)))
		dir := filepath.Join(os.TempDir(), fmt.Sprintf("graftest-%d-%x", os.Getuid(), sum[:6]))
		if buildErr = os.MkdirAll(dir, 0o755); buildErr != nil {
			return
		}
		name := "graft"
		if raceEnabled {
			name += "-race"
		}
		binPath = filepath.Join(dir, name)
		tmp, err := os.CreateTemp(dir, name+".*")
		if err != nil {
			buildErr = err
			return
		}
		tmp.Close()
		args := []string{"build", "-o", tmp.Name()}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, "github.com/graft-registry/graft/cmd/graft")
		out, err := exec.Command("go", args...).CombinedOutput()
		if err == nil {
			err = os.Rename(tmp.Name(), binPath)
		}
		if err != nil {
			os.Remove(tmp.Name())
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// moduleRoot is the directory of the go.mod above dir, or dir.
func moduleRoot(dir string) string {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}

// Server is a running graft serve, and a client of its API.
type Server struct {
	// Client's URL is http://127.0.0.1:PORT.
	*apitest.Client
	// Addr is 127.0.0.1:PORT.
	Addr string
	// DataDir is the server's data directory.
	DataDir string
	args    []string
	cmd     *exec.Cmd
	exited  chan struct{}
	logMu   sync.Mutex
	log     strings.Builder
	t       testing.TB
}

// Start starts graft serve with args on a free port and a fresh data directory, and
// stops it when the test ends. args may set --data-dir to reuse one.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	s := &Server{t: t, DataDir: t.TempDir()}
	for i, a := range args {
		if a == "--data-dir" && i+1 < len(args) {
			s.DataDir = args[i+1]
		} else if v, ok := strings.CutPrefix(a, "--data-dir="); ok {
			s.DataDir = v
		}
	}
	s.args = args
	s.start("127.0.0.1:0")
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("graft serve log:\n%s", s.Log())
		}
	})
	return s
}

func (s *Server) start(addr string) {
	s.t.Helper()
	args := append([]string{"serve", "--addr", addr, "--data-dir", s.DataDir, "--log-format", "json", "--log-level", "debug"}, s.args...)
	cmd := exec.Command(Binary(s.t), args...)
	cmd.Env = append(os.Environ(), "GRAFT_CONFIG=")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			s.logMu.Lock()
			s.log.WriteString(line + "\n")
			s.logMu.Unlock()
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "graft registry listening" {
				select {
				case ready <- rec.Addr:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() {
		cmd.Wait()
		close(s.exited)
	}()
	select {
	case a := <-ready:
		s.Addr = a
		if s.Client == nil {
			s.Client = apitest.NewClient("http://" + a)
		} else {
			// A restart listens where the server did; the connections to the
			// server that stopped are dead.
			s.CloseIdleConnections()
		}
	case <-s.exited:
		s.t.Fatalf("graft serve exited before listening:\n%s", s.Log())
	case <-time.After(60 * time.Second):
		s.cmd.Process.Kill()
		s.t.Fatalf("graft serve did not start listening within 60s:\n%s", s.Log())
	}
}

// Log returns what the server logged so far.
func (s *Server) Log() string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.log.String()
}

// Requests counts the requests of method on path (with its query, as the client sent
// it) in the server's access log so far. The server logs a request once its handler
// returned.
func (s *Server) Requests(method, path string) int {
	n := 0
	for line := range strings.Lines(s.Log()) {
		var rec struct{ Msg, Method, Path string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "request" && rec.Method == method && rec.Path == path {
			n++
		}
	}
	return n
}

// PID is the server's process ID.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Stop sends SIGTERM and waits for a graceful exit.
func (s *Server) Stop() {
	select {
	case <-s.exited:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(60 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
		s.t.Errorf("graft serve did not stop within 60s of SIGTERM")
	}
}

// Kill sends SIGKILL: the process dies wherever it is.
func (s *Server) Kill() {
	s.cmd.Process.Kill()
	<-s.exited
}

// Exited is closed when the process has exited.
func (s *Server) Exited() <-chan struct{} { return s.exited }

// ExitCode is the exit status of a process that has exited.
func (s *Server) ExitCode() int { return s.cmd.ProcessState.ExitCode() }

// Restart starts the server again on the same data directory and address, after a Stop
// or Kill.
func (s *Server) Restart() {
	s.t.Helper()
	<-s.exited
	s.start(s.Addr)
}
