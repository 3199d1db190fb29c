package authe2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/graft-registry/graft/internal/apitest"
	"github.com/graft-registry/graft/internal/clienttest"
)

// ca is a certificate authority of the test's own.
type ca struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T, name string) *ca {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &ca{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a certificate for cn (a server's when ip is set, else a client's)
// and its key, PEM-encoded.
func (c *ca) issue(t *testing.T, cn string, ip net.IP) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// httpsClient is a client of the registry at base that trusts root and presents cert,
// if any.
func httpsClient(t *testing.T, root *ca, base string, cert, key []byte) *apitest.Client {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(root.pem)
	tc := &tls.Config{RootCAs: pool}
	if cert != nil {
		kp, err := tls.X509KeyPair(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		tc.Certificates = []tls.Certificate{kp}
	}
	c := apitest.NewClient(base)
	c.HTTP.Transport.(*http.Transport).TLSClientConfig = tc
	return c
}

// TestTLS serves HTTPS with a client CA: passwords and tokens work over TLS, a client
// certificate the CA signed logs its common name in, one it did not sign gets no
// connection, and plain HTTP gets no answer.
func TestTLS(t *testing.T) {
	root := newCA(t, "graft test CA")
	dir := t.TempDir()
	cert, key := root.issue(t, "127.0.0.1", net.IPv4(127, 0, 0, 1))
	certFile, keyFile, caFile := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem"), filepath.Join(dir, "ca.pem")
	writeFile(t, certFile, string(cert))
	writeFile(t, keyFile, string(key))
	writeFile(t, caFile, string(root.pem))
	r := startRegistry(t, teamPolicy, "--tls-cert", certFile, "--tls-key", keyFile, "--tls-client-ca", caFile)
	base := "https://" + r.srv.Addr
	httpsClient(t, root, base, nil, nil).PushImage(t, "team/app", "v1", apitest.NewImage(t, linuxAMD64, "a layer over TLS"),
		"Authorization", as("admin"))

	anon := httpsClient(t, root, base, nil, nil)
	resp := anon.Do(t, http.MethodGet, "/v2/", nil)
	if resp.Status != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `realm="`+base+`/auth/token"`) {
		t.Errorf("anonymous GET /v2/ over TLS: %s, challenge %q", resp, resp.Header.Get("WWW-Authenticate"))
	}
	if resp := anon.Do(t, http.MethodGet, "/v2/team/app/tags/list", nil, "Authorization", as("dev")); resp.Status != 200 {
		t.Errorf("dev with a password over TLS: %s", resp)
	}

	// a client certificate signed by the CA is its common name's login
	devCert, devKey := root.issue(t, "dev", nil)
	dev := httpsClient(t, root, base, devCert, devKey)
	if resp := dev.Do(t, http.MethodGet, "/v2/team/app/tags/list", nil); resp.Status != 200 {
		t.Errorf("dev's client certificate: %s", resp)
	}
	if resp := dev.Do(t, http.MethodDelete, "/v2/team/app/manifests/v1", nil); resp.Status != 403 {
		t.Errorf("dev's client certificate deleting: %s, want 403", resp)
	}
	tok := dev.Do(t, http.MethodGet, "/auth/token?service=graft&scope=repository:team/app:pull", nil)
	var body struct{ Token string }
	if json.Unmarshal(tok.Body, &body); tok.Status != 200 || body.Token == "" {
		t.Fatalf("a token for a client certificate: %s", tok)
	}
	if resp := anon.Do(t, http.MethodGet, "/v2/team/app/tags/list", nil, "Authorization", "Bearer "+body.Token); resp.Status != 200 {
		t.Errorf("the client certificate's token: %s", resp)
	}
	outCert, outKey := root.issue(t, "outsider", nil)
	if resp := httpsClient(t, root, base, outCert, outKey).Do(t, http.MethodGet, "/v2/team/app/tags/list", nil); resp.Status != 403 {
		t.Errorf("outsider's client certificate: %s, want 403", resp)
	}

	// a certificate of another CA gets no connection at all
	rogue := newCA(t, "rogue CA")
	rc, rk := rogue.issue(t, "admin", nil)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/v2/", nil)
	rogueClient := httpsClient(t, root, base, rc, rk)
	// Go's client sends no certificate the server's CA list does not name: make it
	tc := rogueClient.HTTP.Transport.(*http.Transport).TLSClientConfig
	kp := tc.Certificates[0]
	tc.Certificates = nil
	tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &kp, nil }
	if resp, err := rogueClient.HTTP.Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("a certificate of another CA got an answer: %d", resp.StatusCode)
	}
	// nor does plain HTTP
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+r.srv.Addr+"/v2/", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP to the TLS port: %d", resp.StatusCode)
		}
	}

	// a real client over TLS, trusting the CA
	h := clienttest.NewHome(t)
	mustClient(t, h, passwords["dev"]+"\n", "oras", "login", "--ca-file", caFile, "-u", "dev", "--password-stdin", r.srv.Addr)
	work := t.TempDir()
	writeFile(t, filepath.Join(work, "f.txt"), "over TLS\n")
	mustClientIn(t, h, work, "oras", "push", "--ca-file", caFile, r.srv.Addr+"/team/tls:v1", "f.txt")
	mustClientIn(t, h, work, "oras", "pull", "--ca-file", caFile, "-o", "out", r.srv.Addr+"/team/tls:v1")
}
