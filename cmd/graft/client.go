package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/graft-registry/graft/internal/client"
)

// clientCommands are graft's verbs as a client of any OCI registry. Each top-level
// command carries the flags its verbs share, since the root command is the server's
// as much as the client's.
func clientCommands() []*cobra.Command {
	g := &clientFlags{}
	remote := []*cobra.Command{
		loginCommand(g),
		pushCommand(g), attachCommand(g), pullCommand(g), copyCommand(g),
		discoverCommand(g), deleteCommand(g),
		manifestCommand(g), blobCommand(g), tagCommand(g), repoCommand(g),
		lockCommand(g, false), lockCommand(g, true),
	}
	for _, c := range remote {
		g.addRemote(c)
	}
	// logout reads and writes the Docker config file alone
	logout := logoutCommand(g)
	g.addQuiet(logout)
	return append(remote, logout)
}

const exitCodesHelp = `Exit codes: 0 done; 1 failed; 2 wrong command line; 3 not found (repository,
manifest, tag or blob); 4 authentication failed or refused (401, 403, locked);
5 registry unreachable (connection, DNS, TLS, plain HTTP); 6 not confirmed;
130 interrupted.`

// clientFlags are the flags the client verbs share.
type clientFlags struct {
	plainHTTP bool
	insecure  bool
	caFile    string
	quiet     bool
}

// addRemote adds the flags of a verb that talks to registries, and --quiet.
func (g *clientFlags) addRemote(c *cobra.Command) {
	f := c.PersistentFlags()
	f.BoolVar(&g.plainHTTP, "plain-http", false, "talk plain HTTP, not HTTPS (the default for localhost and 127.0.0.0/8 unless --ca-file is given; --plain-http=false forces HTTPS there)")
	f.BoolVar(&g.insecure, "insecure", false, "do not verify the registry's TLS certificate")
	f.StringVar(&g.caFile, "ca-file", "", "PEM `file` of CA certificates to trust besides the system's (implies HTTPS)")
	g.addQuiet(c)
}

// addQuiet adds --quiet, and the exit codes to the help.
func (g *clientFlags) addQuiet(c *cobra.Command) {
	c.PersistentFlags().BoolVarP(&g.quiet, "quiet", "q", false, "no progress bars or status lines, only the result")
	if c.Long == "" {
		c.Long = c.Short + "."
	}
	c.Long += "\n\n" + exitCodesHelp
}

// group is a command that only holds verbs: alone it prints its help, with an
// unknown verb it is a usage error.
func group(use, short string, verbs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  args(cobra.NoArgs),
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(verbs...)
	return cmd
}

// open parses s and opens what it names, a registry repository or a layout; create
// allows a layout that does not exist yet.
func (g *clientFlags) open(ctx context.Context, cmd *cobra.Command, s string, create bool) (client.Reference, client.Target, error) {
	ref, err := client.ParseReference(s)
	if err != nil {
		return client.Reference{}, nil, err
	}
	target, err := g.options(cmd).Open(ctx, ref, create)
	return ref, target, err
}

// options are the client options the flags of cmd set.
func (g *clientFlags) options(cmd *cobra.Command) *client.Options {
	opts := &client.Options{
		Insecure:  g.insecure,
		CAFile:    g.caFile,
		UserAgent: "graft/" + buildVersion(),
	}
	if f := cmd.Flags().Lookup("plain-http"); f != nil && f.Changed {
		opts.PlainHTTP = &g.plainHTTP
	}
	return opts
}

// progress returns bars on stderr when it is a terminal and --quiet is not set.
func (g *clientFlags) progress() *client.Progress {
	if g.quiet || !term.IsTerminal(int(os.Stderr.Fd())) {
		return nil
	}
	return client.NewProgress(os.Stderr)
}

// status prints a line for the person at the terminal, on stderr, unless --quiet.
func (g *clientFlags) status(cmd *cobra.Command, format string, args ...any) {
	if !g.quiet {
		fmt.Fprintf(cmd.ErrOrStderr(), format+"\n", args...)
	}
}

// run adapts a verb to cobra's RunE. Its context is the command's, which main cancels
// on SIGINT and SIGTERM.
func run(verb func(ctx context.Context, cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		return verb(cmd.Context(), cmd, args)
	}
}

// args checks the positional arguments with check; a mistake is a usage error.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return &client.UsageError{Err: fmt.Errorf("%w; usage: %s", err, cmd.UseLine())}
		}
		return nil
	}
}

// confirm asks question on the terminal, after details, unless yes is set. Without a
// terminal to ask on, the answer is no: a script must say --yes.
func confirm(cmd *cobra.Command, yes bool, details, question string) error {
	if yes {
		return nil
	}
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		return fmt.Errorf("%s: no terminal to ask on: %w", question, client.ErrDeclined)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s%s? [y/N] ", details, question)
	answer, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("reading the answer: %w", err)
	}
	switch strings.ToLower(strings.TrimSpace(answer)) {
	case "y", "yes":
		return nil
	}
	return fmt.Errorf("%s: %w", question, client.ErrDeclined)
}
