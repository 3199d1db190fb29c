package clienttest

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Distribution is a running CNCF distribution registry: `registry` among the pinned
// clients.
type Distribution struct {
	// Addr is 127.0.0.1:PORT.
	Addr string
	log  bytes.Buffer
}

// DistributionOptions configure a distribution registry; the zero value serves plain
// HTTP to anyone.
type DistributionOptions struct {
	// Users (name → password) makes it require basic auth against an htpasswd file
	// of bcrypt hashes.
	Users map[string]string
	// CertFile and KeyFile make it serve HTTPS.
	CertFile, KeyFile string
}

// StartDistribution starts CNCF distribution on a free loopback port with its storage
// in a temporary directory, deletes enabled, and stops it when the test ends.
func StartDistribution(t testing.TB, opts DistributionOptions) *Distribution {
	t.Helper()
	bin := filepath.Join(Dir(t), "registry")
	dir := t.TempDir()
	var authConfig, tlsConfig string
	if opts.CertFile != "" {
		tlsConfig = fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", opts.CertFile, opts.KeyFile)
	}
	if len(opts.Users) > 0 {
		var htpasswd strings.Builder
		for name, password := range opts.Users {
			hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&htpasswd, "%s:%s\n", name, hash)
		}
		path := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(path, []byte(htpasswd.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		authConfig = fmt.Sprintf("auth:\n  htpasswd:\n    realm: graft-test\n    path: %s\n", path)
	}
	// a port another process takes between the probe and the start makes the
	// registry exit; try again with another
	for range 5 {
		addr := FreeAddr(t)
		config := fmt.Sprintf(`version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
%s%s`, filepath.Join(dir, "data"), addr, tlsConfig, authConfig)
		path := filepath.Join(dir, "config.yml")
		if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
		d := &Distribution{Addr: addr}
		cmd := exec.Command(bin, "serve", path)
		cmd.Stdout, cmd.Stderr = &d.log, &d.log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		if waitListening(addr, opts.CertFile != "", exited) {
			t.Cleanup(func() {
				cmd.Process.Signal(os.Interrupt)
				select {
				case <-exited:
				case <-time.After(10 * time.Second):
					cmd.Process.Kill()
					<-exited
				}
			})
			return d
		}
		cmd.Process.Kill()
		<-exited
		t.Logf("distribution did not start on %s:\n%s", addr, d.log.String())
	}
	t.Fatal("distribution did not start")
	return nil
}

// waitListening waits until /v2/ at addr answers, or the process exits.
func waitListening(addr string, https bool, exited <-chan struct{}) bool {
	url, c := "http://"+addr+"/v2/", http.DefaultClient
	if https {
		// only whether it listens matters here, not whom to trust
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
		url, c = "https://"+addr+"/v2/", &http.Client{Transport: tr}
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		resp, err := c.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// FreeAddr returns a loopback address with a port free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
