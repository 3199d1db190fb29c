// Command graft is an OCI registry for images and the artifacts attached to them, and
// its client.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/graft-registry/graft/internal/client"
	"github.com/graft-registry/graft/internal/config"
	"github.com/graft-registry/graft/internal/daemon"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = ""

// main runs the command line and is the one place that turns a verb's error into a
// line on stderr and an exit code: every verb returns its error.
func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	cmd, err := rootCommand().ExecuteContextC(ctx)
	code := exitCode(err)
	if err != nil && ctx.Err() != nil {
		code = exitInterrupted // whatever the verb made of its cancelled context
	}
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %s\n", cmd.CommandPath(), describe(err))
	}
	os.Exit(code)
}

func rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:     "graft",
		Short:   "An OCI registry and client for images and the artifacts attached to them",
		Version: versionText(),
		// alone it prints its help; with an unknown verb it is a usage error
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
		// main prints the error, once
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("graft {{.Version}}\n")
	// every command's flag errors are usage errors: subcommands inherit this
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &client.UsageError{Err: err} })
	root.AddCommand(serveCommand(), versionCommand())
	root.AddCommand(gcCommand(), replicateCommand(), migrateCommand())
	root.AddCommand(userCommand(), tokenCommand())
	root.AddCommand(clientCommands()...)
	return root
}

func serveCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the registry",
		Long: `Run the registry. With no configuration it listens on 127.0.0.1:5000 and keeps
everything in ./graft-data (blobs on the filesystem, metadata in an embedded SQLite
database). Every setting is also a key of the --config YAML file and a GRAFT_*
environment variable; flags win over variables, variables over the file.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(cmd.Flags())
			if err != nil {
				return err
			}
			// SIGINT and SIGTERM cancel the context: a graceful shutdown, and exit 0
			return daemon.Run(cmd.Context(), cfg, newLogger(cfg))
		},
	}
	config.AddFlags(cmd.Flags())
	return cmd
}

func newLogger(cfg *config.Config) *slog.Logger { return daemon.NewLogger(os.Stderr, cfg) }

func versionCommand() *cobra.Command {
	var format formatFlag
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print graft's version",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format.JSON() {
				return client.WriteJSON(cmd.OutOrStdout(), struct {
					Version string `json:"version"`
					Go      string `json:"go"`
					OS      string `json:"os"`
					Arch    string `json:"arch"`
				}{buildVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH})
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "graft %s\n", versionText())
			return err
		},
	}
	format.add(cmd, "output `format`: text or json", formatText, formatJSON)
	return cmd
}

// versionText is what graft version and graft --version print after "graft ".
func versionText() string {
	return fmt.Sprintf("%s (%s %s/%s)", buildVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func buildVersion() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := info.Main.Version
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += "+" + s.Value[:12]
		}
	}
	return v
}
