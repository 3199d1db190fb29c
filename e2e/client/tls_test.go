package client

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/graft-registry/graft/internal/clienttest"
	"github.com/graft-registry/graft/internal/graftest"
)

// selfSignedCert writes a certificate for 127.0.0.1, its own CA, and its key, and
// returns their paths.
func selfSignedCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "graft test registry"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestTLS talks HTTPS to a registry whose certificate no system trusts: refused
// unless --ca-file trusts it or --insecure skips the check. The registry is on
// loopback, so --plain-http=false is needed to use HTTPS at all.
func TestTLS(t *testing.T) {
	t.Parallel()
	certFile, keyFile := selfSignedCert(t)
	reg := clienttest.StartDistribution(t, clienttest.DistributionOptions{CertFile: certFile, KeyFile: keyFile})
	g := newGraft(t)
	g.WriteFile("a.txt", "over TLS\n")
	ref := reg.Addr + "/tls/a:v1"

	if msg := g.Fail(5, "push", "--plain-http=false", ref, "a.txt"); !strings.Contains(msg, "--ca-file") {
		t.Errorf("an untrusted certificate: %q, want a hint at --ca-file", msg)
	}
	g.Must("push", "--plain-http=false", "--ca-file", certFile, ref, "a.txt")
	g.Must("manifest", "get", "--plain-http=false", "--insecure", ref)
	// loopback defaults to plain HTTP, which this registry does not speak
	if msg := g.Fail(1, "manifest", "get", ref); !strings.Contains(msg, "--plain-http=false") {
		t.Errorf("plain HTTP to an HTTPS registry: %q, want a hint at --plain-http=false", msg)
	}
}

// TestCAFileImpliesHTTPS talks to a graft serving TLS on loopback, where graft talks
// plain HTTP by default: --ca-file alone means HTTPS.
func TestCAFileImpliesHTTPS(t *testing.T) {
	t.Parallel()
	certFile, keyFile := selfSignedCert(t)
	srv := graftest.Start(t, "--tls-cert", certFile, "--tls-key", keyFile)
	g := newGraft(t)
	g.WriteFile("a.txt", "over TLS\n")
	ref := srv.Addr + "/tls/a:v1"

	g.Must("push", "--ca-file", certFile, ref, "a.txt")
	g.Must("manifest", "get", "--ca-file", certFile, ref)
	g.Must("tag", "list", "--ca-file", certFile, srv.Addr+"/tls/a")
	// --plain-http still wins, and without either loopback is plain HTTP
	g.Fail(1, "manifest", "get", "--ca-file", certFile, "--plain-http", ref)
	g.Fail(1, "manifest", "get", ref)
}
