package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/graft-registry/graft/internal/auth"
	"github.com/graft-registry/graft/internal/client"
	"github.com/graft-registry/graft/internal/config"
	"github.com/graft-registry/graft/internal/daemon"
	"github.com/graft-registry/graft/internal/metastore"
)

func tokenCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Manage repository-scoped access tokens",
		Long: `Manage repository-scoped access tokens, as ACR has them: a token is a name that
works as a user name with any client, and a secret that works as its password, for
the actions it was given on the repositories its patterns match, and nothing else.

Tokens live in the metadata store the configuration names (the file and GRAFT_*
variables of graft serve, and the flags of each verb), hashed, so every replica knows
them at once; the secret is printed once, when the token is created. Patterns: *
matches within one path component (team/* matches team/app, not team/app/sbom), **
across components. The data directory must exist: the verbs create none.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(tokenCreateCommand(), tokenListCommand(), tokenRevokeCommand())
	return cmd
}

// tokenSettings are the settings of the token verbs: where the metadata store is.
var tokenSettings = []string{"data-dir", "metadata"}

// openTokens opens the metadata store of the configuration cmd's flags name, in a
// data directory that exists.
func openTokens(cmd *cobra.Command) (*config.Config, metastore.Store, error) {
	cfg, err := config.Load(cmd.Flags())
	if err != nil {
		return nil, nil, err
	}
	st, err := daemon.OpenMeta(cmd.Context(), cfg)
	if err != nil {
		return nil, nil, err
	}
	return cfg, st, nil
}

func tokenCreateCommand() *cobra.Command {
	var (
		repos, actions []string
		expires        time.Duration
	)
	cmd := &cobra.Command{
		Use:   "create NAME --repo PATTERN --action ACTIONS [--expires DURATION]",
		Short: "Create a token and print its secret, once",
		Example: `  graft token create ci --repo 'team/*' --action pull,push --expires 720h
  docker login registry.example.com -u ci --password-stdin <<<"$SECRET"`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			cfg, st, err := openTokens(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			if taken, err := auth.ConfiguredUser(cfg, a[0]); err != nil {
				return err
			} else if taken {
				return fmt.Errorf("%s is a user's name: a token needs a name of its own", a[0])
			}
			secret, tok, err := auth.CreateToken(cmd.Context(), st, auth.TokenSpec{
				Name: a[0], Repositories: repos, Actions: actions, TTL: expires,
			}, time.Now())
			if err != nil {
				return err
			}
			// the secret alone on standard output, so that SECRET=$(graft token create ...) works
			fmt.Fprintln(cmd.OutOrStdout(), secret)
			until := "never expires"
			if !tok.Expires.IsZero() {
				until = "expires " + tok.Expires.Local().Format(time.RFC3339)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "token %s: %s on %s; %s. The secret above is shown once: use it as the password of user %s.\n",
				tok.Name, strings.Join(tok.Actions, ","), strings.Join(tok.Repositories, " "), until, tok.Name)
			if !auth.Enabled(cfg) {
				fmt.Fprintln(cmd.ErrOrStderr(), "note: this configuration turns no authentication on (no htpasswd, users or policies), so graft serve lets anyone in and the token changes nothing yet")
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&repos, "repo", nil, "repository `pattern` the token works for (repeat, or separate with commas)")
	cmd.Flags().StringSliceVar(&actions, "action", nil, "what the token may do there: pull, push, delete (repeat, or separate with commas)")
	cmd.Flags().DurationVar(&expires, "expires", 0, "how long the token works, e.g. 720h (default: until revoked)")
	// the users' htpasswd file too: a token must not take a user's name
	config.AddFlags(cmd.Flags(), "data-dir", "metadata", "auth.htpasswd")
	return cmd
}

func tokenListCommand() *cobra.Command {
	var format formatFlag
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the tokens (never their secrets)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, st, err := openTokens(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			toks, err := st.Tokens(cmd.Context())
			if err != nil {
				return err
			}
			if format.JSON() {
				return writeTokensJSON(cmd, toks)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tREPOSITORIES\tACTIONS\tCREATED\tEXPIRES")
			now := time.Now()
			for _, t := range toks {
				exp := "never"
				if !t.Expires.IsZero() {
					exp = t.Expires.Local().Format(time.RFC3339)
					if !now.Before(t.Expires) {
						exp += " (expired)"
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.Name, strings.Join(t.Repositories, ","),
					strings.Join(t.Actions, ","), t.Created.Local().Format(time.RFC3339), exp)
			}
			return tw.Flush()
		},
	}
	format.add(cmd, "output `format`: text or json", formatText, formatJSON)
	config.AddFlags(cmd.Flags(), tokenSettings...)
	return cmd
}

func writeTokensJSON(cmd *cobra.Command, toks []metastore.Token) error {
	type tokenJSON struct {
		Name         string     `json:"name"`
		Repositories []string   `json:"repositories"`
		Actions      []string   `json:"actions"`
		Created      time.Time  `json:"created"`
		Expires      *time.Time `json:"expires,omitempty"`
	}
	out := make([]tokenJSON, len(toks))
	for i, t := range toks {
		out[i] = tokenJSON{Name: t.Name, Repositories: t.Repositories, Actions: t.Actions, Created: t.Created}
		if !t.Expires.IsZero() {
			out[i].Expires = &toks[i].Expires
		}
	}
	return client.WriteJSON(cmd.OutOrStdout(), out)
}

func tokenRevokeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a token: its secret and the access tokens issued to it stop working",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			_, st, err := openTokens(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			if err := auth.RevokeToken(cmd.Context(), st, a[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "revoked token %s\n", a[0])
			return nil
		},
	}
	config.AddFlags(cmd.Flags(), tokenSettings...)
	return cmd
}
