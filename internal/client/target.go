package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content/oci"
	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
	"oras.land/oras-go/v2/registry/remote/retry"
)

// Options are how the client reaches registries: the transport rules and the
// credentials every verb shares. The zero value talks HTTPS, except to loopback hosts,
// with the credentials of the Docker config file.
type Options struct {
	// PlainHTTP, when set, says whether to use plain HTTP for every registry; when
	// nil, plain HTTP is used for loopback hosts only (localhost, 127.0.0.0/8, ::1),
	// where registries for development and tests listen without TLS, unless CAFile
	// is set: a CA to trust means TLS.
	PlainHTTP *bool
	// Insecure skips the verification of registries' TLS certificates.
	Insecure bool
	// CAFile is a PEM file of CA certificates to trust besides the system's.
	CAFile string
	// UserAgent is sent with every request.
	UserAgent string
	// Credential, when set, gives the credentials for a registry instead of the
	// Docker config file, which is then not read.
	Credential auth.CredentialFunc

	once   sync.Once
	client *auth.Client
	store  credentials.Store
	err    error
}

// CredentialStore is the Docker config file (DOCKER_CONFIG or ~/.docker/config.json)
// with its credential helpers, which docker, oras and crane read as well.
func (o *Options) CredentialStore() (credentials.Store, error) {
	o.init()
	return o.store, o.err
}

// Client is the authenticating HTTP client every repository shares, so that tokens
// are fetched once per scope.
func (o *Options) Client() (*auth.Client, error) {
	o.init()
	return o.client, o.err
}

func (o *Options) init() {
	o.once.Do(func() {
		credential := o.Credential
		if credential == nil {
			o.store, o.err = credentials.NewStoreFromDocker(credentials.StoreOptions{
				// as docker does when no helper is configured; `graft login` says so
				AllowPlaintextPut:        true,
				DetectDefaultNativeStore: true,
			})
			if o.err != nil {
				o.err = fmt.Errorf("reading the Docker config file: %w", o.err)
				return
			}
			credential = credentials.Credential(o.store)
		}
		transport := http.DefaultTransport.(*http.Transport).Clone()
		transport.TLSClientConfig, o.err = o.tlsConfig()
		if o.err != nil {
			return
		}
		o.client = &auth.Client{
			Client:     &http.Client{Transport: retry.NewTransport(transport)},
			Cache:      auth.NewCache(),
			Credential: credential,
		}
		if o.UserAgent != "" {
			o.client.SetUserAgent(o.UserAgent)
		}
	})
}

func (o *Options) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{InsecureSkipVerify: o.Insecure}
	if o.CAFile == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(o.CAFile)
	if err != nil {
		return nil, &UsageError{Err: fmt.Errorf("reading --ca-file: %w", err)}
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, &UsageError{Err: fmt.Errorf("--ca-file %s holds no PEM certificate", o.CAFile)}
	}
	cfg.RootCAs = pool
	return cfg, nil
}

// usePlainHTTP applies the plain HTTP rule to host (host or host:port).
func (o *Options) usePlainHTTP(host string) bool {
	if o.PlainHTTP != nil {
		return *o.PlainHTTP
	}
	return o.CAFile == "" && IsLoopback(host)
}

// IsLoopback reports whether host (host or host:port) names this machine.
func IsLoopback(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Registry returns a client of the registry at host.
func (o *Options) Registry(host string) (*remote.Registry, error) {
	client, err := o.Client()
	if err != nil {
		return nil, err
	}
	reg, err := remote.NewRegistry(host)
	if err != nil {
		return nil, &UsageError{Err: fmt.Errorf("invalid registry %q: %w", host, err)}
	}
	reg.PlainHTTP = o.usePlainHTTP(host)
	reg.Client = client
	return reg, nil
}

// Repository returns a client of the repository ref names in a registry.
func (o *Options) Repository(ref Reference) (*remote.Repository, error) {
	if ref.IsLayout() {
		return nil, &UsageError{Err: fmt.Errorf("%s: this verb works on registries only, not on OCI layouts", ref)}
	}
	client, err := o.Client()
	if err != nil {
		return nil, err
	}
	repo, err := remote.NewRepository(ref.Registry + "/" + ref.Repository)
	if err != nil {
		return nil, &UsageError{Err: fmt.Errorf("invalid repository %q: %w", ref, err)}
	}
	repo.PlainHTTP = o.usePlainHTTP(ref.Registry)
	repo.Client = client
	return repo, nil
}

// Target is what the verbs read and write: a repository in a registry or an OCI image
// layout directory.
type Target interface {
	oras.GraphTarget
}

// Open returns the repository or OCI layout ref names. A layout that does not exist is
// created only when create is set: reading from a directory that is not a layout is a
// mistake worth reporting, not an empty result.
func (o *Options) Open(ctx context.Context, ref Reference, create bool) (Target, error) {
	if !ref.IsLayout() {
		return o.Repository(ref)
	}
	if !create {
		if _, err := os.Stat(filepath.Join(ref.Layout, ocispec.ImageLayoutFile)); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("%s%s is not an OCI image layout (no %s): %w", LayoutPrefix, ref.Layout, ocispec.ImageLayoutFile, err)
			}
			return nil, fmt.Errorf("opening OCI layout %s: %w", ref.Layout, err)
		}
	}
	store, err := oci.NewWithContext(ctx, ref.Layout)
	if err != nil {
		return nil, fmt.Errorf("opening OCI layout %s: %w", ref.Layout, err)
	}
	return store, nil
}

// Resolve returns the descriptor of the manifest ref names in target.
func Resolve(ctx context.Context, target oras.ReadOnlyTarget, ref Reference) (ocispec.Descriptor, error) {
	if ref.Reference == "" {
		return ocispec.Descriptor{}, &UsageError{Err: fmt.Errorf("%s: name a tag or digest", ref)}
	}
	desc, err := target.Resolve(ctx, ref.Reference)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("resolving %s: %w", ref, err)
	}
	return desc, nil
}

// compile-time checks that both kinds of target list referrers the way Discover
// expects: the remote one through the referrers API or its tag schema, the layout
// through its predecessors.
var (
	_ registry.ReferrerLister = (*remote.Repository)(nil)
	_ Target                  = (*oci.Store)(nil)
)
