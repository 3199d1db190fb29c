package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/graft-registry/graft/internal/client"
	"github.com/graft-registry/graft/internal/config"
	"github.com/graft-registry/graft/internal/daemon"
	"github.com/graft-registry/graft/internal/migrate"
)

func migrateCommand() *cobra.Command {
	var (
		to     string
		format formatFlag
	)
	cmd := &cobra.Command{
		Use:   "migrate --to FILE",
		Short: "Copy a registry to the stores another configuration names",
		Long: `Copy everything a registry holds — blobs, repositories, manifests, tags,
referrers, locks and access tokens — from the stores this configuration names (the
file and GRAFT_* variables of graft serve, and the flags below) to those the configuration file
--to names: from the embedded deployment to S3 and PostgreSQL, or back.

Every manifest is pushed through the destination's own checks; blob bytes are copied
once each. Run it again to resume an interrupted copy: what the destination has is
skipped. Stop the registry's writers first, or run it again afterwards to pick up what
they wrote meanwhile.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if to == "" {
				return &client.UsageError{Err: errors.New("--to names the configuration file of the destination")}
			}
			srcCfg, err := config.Load(cmd.Flags())
			if err != nil {
				return err
			}
			if err := daemon.CheckDataDir(srcCfg); err != nil {
				return fmt.Errorf("source: %w", err)
			}
			dstCfg, err := config.File(to)
			if err != nil {
				return err
			}
			log := newLogger(srcCfg)
			ctx := cmd.Context()
			src, err := daemon.Open(ctx, srcCfg)
			if err != nil {
				return fmt.Errorf("source: %w", err)
			}
			defer src.Close()
			dst, err := daemon.Open(ctx, dstCfg)
			if err != nil {
				return fmt.Errorf("destination: %w", err)
			}
			defer dst.Close()
			if src.BlobsAt == dst.BlobsAt && src.MetaAt == dst.MetaAt {
				return errors.New("the source and the destination are the same stores")
			}
			log.Info("migrating", "from_blobs", src.BlobsAt, "from_metadata", src.MetaAt,
				"to_blobs", dst.BlobsAt, "to_metadata", dst.MetaAt)
			rep, err := migrate.Copy(ctx, migrate.Stores{Blobs: src.Blobs, Meta: src.Meta},
				migrate.Stores{Blobs: dst.Blobs, Meta: dst.Meta}, log)
			if err != nil {
				return err
			}
			if format.JSON() {
				return client.WriteJSON(cmd.OutOrStdout(), rep)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "copied %d blobs (%d bytes), %d repositories, %d manifests, %d tags, %d tokens\n",
				rep.Blobs, rep.Bytes, rep.Repositories, rep.Manifests, rep.Tags, rep.Tokens)
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "configuration file naming the destination's stores")
	format.add(cmd, "output `format`: text or json", formatText, formatJSON)
	config.AddFlags(cmd.Flags(), "data-dir", "log", "storage", "metadata")
	return cmd
}
