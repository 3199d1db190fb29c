package main

import (
	"fmt"
	"slices"

	"github.com/spf13/cobra"

	"github.com/graft-registry/graft/internal/client"
	"github.com/graft-registry/graft/internal/config"
	"github.com/graft-registry/graft/internal/daemon"
)

func replicateCommand() *cobra.Command {
	var (
		rule   string
		all    bool
		format formatFlag
	)
	cmd := &cobra.Command{
		Use:   "replicate --rule NAME (--all | REPOSITORY...)",
		Short: "Copy what a replication rule covers to its destination, once",
		Long: `Copy every tagged manifest of the repositories a replication rule of the
configuration covers (--all) or of the repositories named (which it must cover) to the
rule's destination, each with its whole graph: referrers, tag-schema signatures and
attestations, and what is attached to those. graft serve replicates changes as they
happen; this is for the content that was there before the rule.

It reads the stores the configuration names, as graft gc does, and is safe while
graft serve runs. What the destination has already is skipped, so an interrupted run
is resumed by running it again.`,
		Args: args(cobra.ArbitraryArgs),
		RunE: func(cmd *cobra.Command, repos []string) error {
			cfg, err := config.Load(cmd.Flags())
			if err != nil {
				return err
			}
			var found *config.ReplicationRule
			if cfg.Replication != nil {
				for i := range *cfg.Replication {
					if (*cfg.Replication)[i].Name == rule {
						found = &(*cfg.Replication)[i]
					}
				}
			}
			if all == (len(repos) > 0) {
				return &client.UsageError{Err: fmt.Errorf("name repositories, or --all for every repository the rule covers")}
			}
			if found == nil {
				return &client.UsageError{Err: fmt.Errorf("the configuration has no replication rule named %q", rule)}
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
			reg, err := daemon.NewRegistry(st, cfg, log)
			if err != nil {
				return err
			}
			p, err := daemon.Replicator(*found, reg, log)
			if err != nil {
				return err
			}
			for _, r := range repos {
				if !p.Matches(r) {
					return &client.UsageError{Err: fmt.Errorf("replication rule %s does not cover repository %s", rule, r)}
				}
			}
			if len(repos) == 0 {
				for last := ""; ; {
					page, err := reg.Catalog(cmd.Context(), last, 1000)
					if err != nil {
						return err
					}
					for _, r := range page.Items {
						if p.Matches(r) {
							repos = append(repos, r)
						}
					}
					if !page.More || len(page.Items) == 0 {
						break
					}
					last = page.Items[len(page.Items)-1]
				}
			}
			out := cmd.OutOrStdout()
			var total client.CopyResult
			repos = slices.Compact(repos)
			for _, repo := range repos {
				r, err := p.Repository(cmd.Context(), repo, func(tag string, r client.CopyResult) {
					if format.JSON() {
						return
					}
					fmt.Fprintf(out, "%s:%s -> %s: %s\n", repo, tag, p.DestinationOf(repo), copyReport(r, true))
				})
				total.Add(r)
				if err != nil {
					return err
				}
			}
			if format.JSON() {
				return client.WriteJSON(out, struct {
					Repositories []string          `json:"repositories"`
					Copied       client.CopyResult `json:"copied"`
				}{repos, total})
			}
			fmt.Fprintf(out, "replicated %d repositories: %s\n", len(repos), copyReport(total, false))
			return nil
		},
	}
	cmd.Flags().StringVar(&rule, "rule", "", "the `name` of the replication rule")
	cmd.MarkFlagRequired("rule")
	cmd.Flags().BoolVar(&all, "all", false, "every repository the rule covers")
	format.add(cmd, "output `format`: text or json", formatText, formatJSON)
	config.AddFlags(cmd.Flags(), "data-dir", "log", "storage", "metadata")
	return cmd
}
