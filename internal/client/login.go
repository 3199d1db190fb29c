package client

import (
	"context"
	"fmt"

	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
)

// Login checks username and password against the registry at host and stores them in
// the Docker config file, or in the credential helper it names for host, where
// docker, oras and crane find them too.
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
	if err := credentials.Login(ctx, store, reg, cred); err != nil {
		return fmt.Errorf("logging in to %s: %w", host, err)
	}
	return nil
}

// Logout removes the credentials of host from where Login stored them.
func Logout(ctx context.Context, opts *Options, host string) error {
	store, err := opts.CredentialStore()
	if err != nil {
		return err
	}
	if err := credentials.Logout(ctx, store, host); err != nil {
		return fmt.Errorf("logging out of %s: %w", host, err)
	}
	return nil
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
