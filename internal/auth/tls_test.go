package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/graft-registry/graft/internal/config"
)

// selfSigned writes a self-signed certificate for cn and its key into dir.
func selfSigned(t *testing.T, dir, cn string) (certFile, keyFile string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

func TestServerTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, dir, "one")
	if tc, err := ServerTLS(config.TLS{}); tc != nil || err != nil {
		t.Errorf("no TLS settings: %v, %v", tc, err)
	}
	for _, bad := range []config.TLS{{Cert: cert}, {Key: key}, {ClientCA: cert}, {Cert: cert, Key: key, ClientCA: key},
		{Cert: key, Key: cert}} {
		if _, err := ServerTLS(bad); err == nil {
			t.Errorf("ServerTLS(%+v) accepted", bad)
		}
	}
	tc, err := ServerTLS(config.TLS{Cert: cert, Key: key, ClientCA: cert})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := tc.GetCertificate(nil)
	first, _ := x509.ParseCertificate(got.Certificate[0])
	if first.Subject.CommonName != "one" {
		t.Fatalf("serving %q", first.Subject.CommonName)
	}

	// a renewed certificate is served without a restart
	selfSigned(t, dir, "two")
	future := time.Now().Add(time.Minute)
	os.Chtimes(cert, future, future)
	os.Chtimes(key, future, future)
	if got, _ = tc.GetCertificate(nil); got.Leaf != nil && got.Leaf.Subject.CommonName != "one" {
		t.Error("the files were looked at again within 10 seconds")
	}
	defer func(d time.Duration) { certRecheck = d }(certRecheck)
	certRecheck = 0
	got, _ = tc.GetCertificate(nil)
	now, _ := x509.ParseCertificate(got.Certificate[0])
	if now.Subject.CommonName != "two" {
		t.Errorf("after renewal still serving %q", now.Subject.CommonName)
	}
}
