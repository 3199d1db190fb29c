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

func loginCommand(g *clientFlags) *cobra.Command {
	var (
		username, password string
		passwordStdin      bool
	)
	cmd := &cobra.Command{
		Use:   "login HOST",
		Short: "Log in to a registry",
		Long: `Check a user name and password against the registry at HOST and store them in the
Docker config file ($DOCKER_CONFIG/config.json, else ~/.docker/config.json), or in
the credential helper it names (credsStore, credHelpers), where docker, oras and
crane find them too, as graft finds theirs. Without a credential helper the
password is stored in the file, base64-encoded, as docker does.

The password comes from --password-stdin (preferred: it stays out of the shell's
history and the process list), --password, or a prompt on the terminal.`,
		Example: `  echo "$TOKEN" | graft login registry.example.com -u ci --password-stdin`,
		Args:    args(cobra.ExactArgs(1)),
		RunE: run(func(ctx context.Context, cmd *cobra.Command, a []string) error {
			host := a[0]
			if password != "" && passwordStdin {
				return &client.UsageError{Err: errors.New("--password and --password-stdin exclude each other")}
			}
			var err error
			if username == "" {
				if username, err = prompt(cmd, "Username: ", false, "pass --username and --password-stdin"); err != nil {
					return err
				}
			}
			switch {
			case passwordStdin:
				password, err = readPassword(cmd.InOrStdin())
			case password == "":
				password, err = prompt(cmd, "Password: ", true, "pass --password-stdin")
			}
			if err != nil {
				return err
			}
			opts := g.options(cmd)
			if err := client.Login(ctx, opts, host, username, password); err != nil {
				return err
			}
			g.status(cmd, "Logged in to %s (credentials in %s)", host, opts.ConfigPath())
			return nil
		}),
	}
	cmd.Flags().StringVarP(&username, "username", "u", "", "user `name`")
	cmd.Flags().StringVarP(&password, "password", "p", "", "password or token (prefer --password-stdin)")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password or token from standard input")
	return cmd
}

func logoutCommand(g *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "logout HOST",
		Short: "Remove a registry's credentials from the Docker config file",
		Args:  args(cobra.ExactArgs(1)),
		RunE: run(func(ctx context.Context, cmd *cobra.Command, a []string) error {
			opts := g.options(cmd)
			had, err := client.Logout(ctx, opts, a[0])
			if err != nil {
				return err
			}
			if !had {
				g.status(cmd, "Not logged in to %s: no credentials to remove", a[0])
				return nil
			}
			g.status(cmd, "Logged out of %s", a[0])
			return nil
		}),
	}
}

// readPassword reads the first line of r, as docker login --password-stdin does.
func readPassword(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return "", fmt.Errorf("reading the password from standard input: %w", err)
	}
	password := strings.TrimRight(strings.SplitN(string(b), "\n", 2)[0], "\r")
	if password == "" {
		return "", &client.UsageError{Err: errors.New("--password-stdin: standard input holds no password")}
	}
	return password, nil
}

// prompt asks for a value on the terminal, without echo for secrets. Without a
// terminal it fails with instead, the flags that give the value.
func prompt(cmd *cobra.Command, question string, secret bool, instead string) (string, error) {
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return "", &hintedError{
			err:  &client.UsageError{Err: fmt.Errorf("no terminal to ask for the %s on", strings.ToLower(strings.TrimSuffix(question, ": ")))},
			hint: instead,
		}
	}
	fmt.Fprint(cmd.ErrOrStderr(), question)
	if secret {
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(cmd.ErrOrStderr())
		if err != nil {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		return string(b), nil
	}
	line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the answer: %w", err)
	}
	return strings.TrimSpace(line), nil
}
