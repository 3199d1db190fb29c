package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/graft-registry/graft/internal/client"
	"github.com/graft-registry/graft/internal/config"
	"github.com/graft-registry/graft/internal/daemon"
)

func gcCommand() *cobra.Command {
	var (
		dryRun bool
		format formatFlag
	)
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Remove unreferenced blobs and unreachable manifests, once",
		Long: `Collect garbage once, on the stores the configuration names (the file and
GRAFT_* variables of graft serve, and the flags below), in a data directory that
exists: gc creates none. It is safe while graft serve runs: nothing younger than
gc.delay is touched, and every removal checks again, in a transaction, that nothing
reaches what it removes.

Removed: manifests that are untagged, unlocked and reached by no tag, no index that
stays and no subject that stays (referrers whose subject is gone, unless
gc.orphan-referrers is keep); blobs of a repository that none of its manifests names;
and the bytes of blobs no repository may read. graft serve does the same every
gc.interval.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(cmd.Flags())
			if err != nil {
				return err
			}
			if err := daemon.CheckDataDir(cfg); err != nil {
				return err
			}
			log := newLogger(cfg)
			st, err := daemon.Open(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer st.Close()
			opts := daemon.GCOptions(cfg)
			opts.DryRun = dryRun
			reg, err := daemon.NewRegistry(st, cfg, log)
			if err != nil {
				return err
			}
			rep, err := reg.GC(cmd.Context(), opts)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if format.JSON() {
				return client.WriteJSON(out, rep)
			}
			verb := "removed"
			if dryRun {
				verb = "would remove"
			}
			for _, m := range rep.Manifests {
				fmt.Fprintf(out, "manifest %s\n", m)
			}
			for _, l := range rep.Links {
				fmt.Fprintf(out, "link %s\n", l)
			}
			for _, b := range rep.Blobs {
				fmt.Fprintf(out, "blob %s\n", b)
			}
			fmt.Fprintf(out, "%s %d manifests, %d links, %d blobs (%d bytes) in %s\n", verb,
				len(rep.Manifests), len(rep.Links), len(rep.Blobs), rep.Bytes, rep.Duration.Round(1e6))
			return nil
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "list what would be removed, remove nothing")
	format.add(cmd, "output `format`: text or json", formatText, formatJSON)
	config.AddFlags(cmd.Flags(), "data-dir", "log", "storage", "metadata", "gc.delay", "gc.orphan-referrers")
	return cmd
}
