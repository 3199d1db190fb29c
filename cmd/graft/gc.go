package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/graft-registry/graft/internal/client"
	"github.com/graft-registry/graft/internal/config"
	"github.com/graft-registry/graft/internal/daemon"
	"github.com/graft-registry/graft/internal/registry"
)

func gcCommand() *cobra.Command {
	var (
		dryRun bool
		asOf   string
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

Removed: first, the tags retention policies let go (see the retention key of the
configuration file); then manifests that are untagged, unlocked and reached by no
tag, no index that stays and no subject that stays (referrers and tag-schema
signatures whose subject is gone, unless gc.orphan-referrers is keep); blobs of a
repository that none of its manifests names; and the bytes of blobs no repository may
read. graft serve does the same every gc.interval.

The text report groups what goes by repository, each tag and manifest with the rule
that removes it; -o json lists every decision, also what a policy kept and why.`,
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
			if asOf != "" {
				if opts.PolicyTime, err = time.Parse(time.RFC3339Nano, asOf); err != nil {
					return &client.UsageError{Err: fmt.Errorf("--as-of: %w", err)}
				}
			}
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
			writeGCReport(out, rep, dryRun)
			return nil
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "list what would be removed, remove nothing")
	cmd.Flags().StringVar(&asOf, "as-of", "", "apply the retention policies as of `time` (RFC 3339): the ages and pulls they look at are measured from it; the grace period from now")
	format.add(cmd, "output `format`: text or json", formatText, formatJSON)
	config.AddFlags(cmd.Flags(), "data-dir", "log", "storage", "metadata", "gc.delay", "gc.orphan-referrers")
	return cmd
}

// writeGCReport writes rep as text: what goes, by repository, each with the rule that
// removes it, then the blobs, and a summary line.
func writeGCReport(out io.Writer, rep *registry.GCReport, dryRun bool) {
	type repoReport struct {
		tags, manifests []registry.Decision
		links           int
		bytes           int64
	}
	repos := map[string]*repoReport{}
	of := func(name string) *repoReport {
		if repos[name] == nil {
			repos[name] = &repoReport{}
		}
		return repos[name]
	}
	for _, d := range rep.Decisions {
		if !d.Remove {
			continue
		}
		rr := of(d.Repo)
		if d.Tag != "" {
			rr.tags = append(rr.tags, d)
		} else {
			rr.manifests = append(rr.manifests, d)
			rr.bytes += d.Size
		}
	}
	for _, l := range rep.Links {
		repo, _, _ := strings.Cut(l, "@")
		of(repo).links++
	}
	verb := "removed"
	if dryRun {
		verb = "would remove"
	}
	for _, name := range slices.Sorted(maps.Keys(repos)) {
		rr := repos[name]
		fmt.Fprintf(out, "%s: %d tags, %d manifests (%s), %d links\n", name, len(rr.tags), len(rr.manifests),
			byteSize(rr.bytes), rr.links)
		for _, d := range rr.tags {
			fmt.Fprintf(out, "  tag %s (%s, policy %s)\n", d.Tag, d.Rule, d.Policy)
		}
		for _, d := range rr.manifests {
			fmt.Fprintf(out, "  manifest %s (%s)\n", d.Digest, d.Rule)
		}
	}
	for _, b := range rep.Blobs {
		fmt.Fprintf(out, "blob %s\n", b)
	}
	fmt.Fprintf(out, "%s %d tags, %d manifests, %d links, %d blobs (%s) in %s\n", verb,
		len(rep.Tags), len(rep.Manifests), len(rep.Links), len(rep.Blobs), byteSize(rep.Bytes), rep.Duration.Round(time.Millisecond))
}
