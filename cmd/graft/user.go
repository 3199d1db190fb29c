package main

import (
	"errors"
	"fmt"
	"slices"

	"github.com/spf13/cobra"

	"github.com/graft-registry/graft/internal/auth"
	"github.com/graft-registry/graft/internal/client"
	"github.com/graft-registry/graft/internal/config"
)

func userCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Manage the users of graft serve's htpasswd file",
		Long: `Manage the users of the htpasswd file graft serve authenticates with: --htpasswd
FILE, or auth.htpasswd of the configuration (--config, GRAFT_CONFIG). Passwords are
stored as bcrypt hashes; graft serve reads the file again when it changes.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(userAddCommand(), userRemoveCommand(), userListCommand(), userHashCommand())
	return cmd
}

// userSettings are the settings of the user verbs: the htpasswd file.
var userSettings = []string{"auth.htpasswd"}

// htpasswdFile is the htpasswd file the flags, variables and configuration of cmd name.
func htpasswdFile(cmd *cobra.Command) (string, error) {
	cfg, err := config.Load(cmd.Flags())
	if err != nil {
		return "", err
	}
	if cfg.Auth.Htpasswd == "" {
		return "", &hintedError{
			err:  &client.UsageError{Err: errors.New("no htpasswd file")},
			hint: "pass --htpasswd FILE, or set auth.htpasswd in the configuration",
		}
	}
	return cfg.Auth.Htpasswd, nil
}

func userAddCommand() *cobra.Command {
	var (
		passwordStdin bool
		cost          int
	)
	cmd := &cobra.Command{
		Use:   "add NAME",
		Short: "Add a user to the htpasswd file, or set their password",
		Example: `  echo "$PASSWORD" | graft user add alice --password-stdin --htpasswd /etc/graft/htpasswd
  graft user add bob --config graft.yaml        # asks for the password twice`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			path, err := htpasswdFile(cmd)
			if err != nil {
				return err
			}
			password, err := newPassword(cmd, passwordStdin)
			if err != nil {
				return err
			}
			added, err := auth.SetPassword(path, a[0], password, cost)
			if err != nil {
				return err
			}
			verb := "set the password of"
			if added {
				verb = "added"
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%s user %s in %s\n", verb, a[0], path)
			return nil
		},
	}
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from the first line of standard input")
	cmd.Flags().IntVar(&cost, "bcrypt-cost", auth.DefaultCost, "bcrypt cost of the hash")
	config.AddFlags(cmd.Flags(), userSettings...)
	return cmd
}

// newPassword reads a password to set: from standard input, or asked twice on the
// terminal so that a typo does not lock the user out.
func newPassword(cmd *cobra.Command, stdin bool) (string, error) {
	if stdin {
		return readPassword(cmd.InOrStdin())
	}
	p, err := prompt(cmd, "Password: ", true, "pass --password-stdin")
	if err != nil {
		return "", err
	}
	again, err := prompt(cmd, "Repeat the password: ", true, "pass --password-stdin")
	if err != nil {
		return "", err
	}
	if p != again {
		return "", errors.New("the passwords differ")
	}
	return p, nil
}

func userRemoveCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a user from the htpasswd file",
		Long: `Remove a user from the htpasswd file. graft serve refuses their password, and the
tokens it issued to them, as soon as it reads the file again (within a second).`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			path, err := htpasswdFile(cmd)
			if err != nil {
				return err
			}
			if err := auth.RemoveUser(path, a[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "removed user %s from %s\n", a[0], path)
			return nil
		},
	}
	config.AddFlags(cmd.Flags(), userSettings...)
	return cmd
}

func userListCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the users of the htpasswd file",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := htpasswdFile(cmd)
			if err != nil {
				return err
			}
			users, err := auth.ReadHtpasswd(path)
			if err != nil {
				return err
			}
			names := make([]string, 0, len(users))
			for n := range users {
				names = append(names, n)
			}
			slices.Sort(names)
			for _, n := range names {
				fmt.Fprintln(cmd.OutOrStdout(), n)
			}
			return nil
		},
	}
	config.AddFlags(cmd.Flags(), userSettings...)
	return cmd
}

func userHashCommand() *cobra.Command {
	var (
		passwordStdin bool
		cost          int
	)
	cmd := &cobra.Command{
		Use:   "hash",
		Short: "Print the bcrypt hash of a password, for auth.users in the configuration",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			password, err := newPassword(cmd, passwordStdin)
			if err != nil {
				return err
			}
			h, err := auth.HashPassword(password, cost)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), h)
			return nil
		},
	}
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from the first line of standard input")
	cmd.Flags().IntVar(&cost, "bcrypt-cost", auth.DefaultCost, "bcrypt cost of the hash")
	return cmd
}
