package client

import (
	"context"
	"fmt"

	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
)

// Login checks username and password against the registry at host and stores them in
// the Docker config file, or in the credential helper it names for host, where
// docker, oras and crane find them too. It does what oras-go's credentials.Login does,
// and says what failed in a *LoginError.
func Login(ctx context.Context, opts *Options, host, username, password string) error {
	store, err := opts.CredentialStore()
	if err != nil {
		return err
	}
	reg, err := opts.Registry(host)
	if err != nil {
		return err
	}
	cred := auth.Credential{Username: username, Password: password}
	// a client of its own, without the shared token cache: these credentials alone
	client := *reg.Client.(*auth.Client)
	client.Cache = nil
	client.Credential = auth.StaticCredential(reg.Reference.Registry, cred)
	reg.Client = &client
	if err := reg.Ping(ctx); err != nil {
		return &LoginError{Host: host, Err: err}
	}
	server := credentials.ServerAddressFromRegistry(reg.Reference.Registry)
	if err := store.Put(ctx, server, cred); err != nil {
		return fmt.Errorf("storing the credentials of %s: %w", host, err)
	}
	return nil
}

// Logout removes the credentials of host from where Login stored them. It reports
// whether there were any: logging out of a registry never logged in to is no error,
// but worth saying.
func Logout(ctx context.Context, opts *Options, host string) (bool, error) {
	store, err := opts.CredentialStore()
	if err != nil {
		return false, err
	}
	server := credentials.ServerAddressFromRegistry(host)
	cred, err := store.Get(ctx, server)
	if err != nil {
		return false, fmt.Errorf("reading the credentials of %s: %w", host, err)
	}
	if cred == auth.EmptyCredential {
		return false, nil
	}
	if err := store.Delete(ctx, server); err != nil {
		return false, fmt.Errorf("removing the credentials of %s: %w", host, err)
	}
	return true, nil
}

// ConfigPath is the Docker config file Login writes to.
func (o *Options) ConfigPath() string {
	store, err := o.CredentialStore()
	if err != nil {
		return ""
	}
	if ds, ok := store.(*credentials.DynamicStore); ok {
		return ds.ConfigPath()
	}
	return ""
}
