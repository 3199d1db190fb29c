package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/graft-registry/graft/internal/client"
)

func discoverCommand(g *clientFlags) *cobra.Command {
	var (
		format formatFlag
		opts   client.DiscoverOptions
	)
	cmd := &cobra.Command{
		Use:   "discover REF",
		Short: "Show the artifacts of a manifest: the graph under it",
		Long: `Show the artifacts of REF, and theirs, recursively: signatures, SBOMs,
attestations, signatures of SBOMs. An artifact of REF is a manifest whose subject
is REF (a referrer), or one that the referrers tag schema names for REF:

  sha256-<hex>.sig, .att, .sbom  tags cosign gives the signatures, attestations
                                 and SBOMs it makes without a subject (by default)
  sha256-<hex>                   the fallback index that lists referrers, where
                                 the referrers API does not (notation writes both)

These are found by resolving those tags, never by listing tags, and are marked in
every format: "(tag sha256-….sig)" in the tree, the EDGE column of the table, and
"edge": "tag" (beside "edge": "subject" for referrers) in JSON.

On a registry without the referrers API the referrers are read from the fallback
index that graft copy, graft attach and oras write there. In an OCI layout
(oci:DIR:TAG), from the subjects of its manifests.

Formats: tree (default; types and digests, as oras discover -o tree), table (one
row per artifact, depth first) and json (nested, as oras discover --format json).
Artifacts are sorted by artifact type, then digest, so that the same graph prints
the same on every registry.`,
		Example: `  graft discover localhost:5000/demo/app:v1
  graft discover localhost:5000/demo/app:v1 -o json --artifact-type application/spdx+json`,
		Args: args(cobra.ExactArgs(1)),
		RunE: run(func(ctx context.Context, cmd *cobra.Command, a []string) error {
			if opts.Depth < 0 {
				return &client.UsageError{Err: fmt.Errorf("--depth %d: want 0 (all) or more", opts.Depth)}
			}
			ref, target, err := g.open(ctx, cmd, a[0], false)
			if err != nil {
				return err
			}
			root, err := client.Resolve(ctx, target, ref)
			if err != nil {
				return err
			}
			graph, err := client.Discover(ctx, target, root, opts)
			if err != nil {
				return fmt.Errorf("discovering the artifacts of %s: %w", ref, err)
			}
			return client.WriteGraph(cmd.OutOrStdout(), format.String(), ref.Repo(), graph)
		}),
	}
	format.add(cmd, "output `format`: tree, table or json", client.FormatTree, client.FormatTable, client.FormatJSON)
	cmd.Flags().StringVar(&opts.ArtifactType, "artifact-type", "", "only the artifacts of REF of this `type` (and those under them)")
	cmd.Flags().IntVar(&opts.Depth, "depth", 0, "levels of artifacts to show; 0 shows all")
	return cmd
}

func deleteCommand(g *clientFlags) *cobra.Command {
	var (
		yes    bool
		format formatFlag
	)
	cmd := &cobra.Command{
		Use:   "delete REF",
		Short: "Delete a manifest and every artifact under it",
		Long: `Delete the manifest REF names (by tag or digest) and its artifact graph, as graft
discover shows it: the artifacts attached to it, those attached to them, and so on,
cosign's tag-schema signatures (sha256-<hex>.sig, .att, .sbom) among them, with
their tags and the fallback indexes (sha256-<hex>) that list them.

A graft registry deletes the graph itself in one request and says what it removed,
keeping locked manifests (and what hangs under them): graft reports those and exits
with code 4. On any other registry, or an OCI layout, graft deletes the manifests
one by one, deepest first (under each manifest, its referrers, then its tag-schema
artifacts and fallback index), so that an interrupted delete leaves no artifact
whose subject is gone.

graft lists what it will delete and asks first; --yes does not ask. Without a
terminal to ask on, it deletes nothing unless --yes is given.`,
		Example: `  graft delete localhost:5000/demo/app:v1 --yes`,
		Args:    args(cobra.ExactArgs(1)),
		RunE: run(func(ctx context.Context, cmd *cobra.Command, a []string) error {
			ref, target, err := g.open(ctx, cmd, a[0], false)
			if err != nil {
				return err
			}
			root, err := client.Resolve(ctx, target, ref)
			if err != nil {
				return err
			}
			graph, err := client.Discover(ctx, target, root, client.DiscoverOptions{})
			if err != nil {
				return fmt.Errorf("discovering the artifacts of %s: %w", ref, err)
			}
			steps := graph.Plan()
			var plan strings.Builder
			fmt.Fprintf(&plan, "%s and the %d artifacts under it:\n", ref.WithReference(root.Digest.String()), graph.Count())
			for _, s := range steps {
				fmt.Fprintf(&plan, "  %s  %s", s.Digest, artifactLabel(s.ArtifactType, s.MediaType))
				if s.Tag != "" {
					fmt.Fprintf(&plan, "  (tag %s)", s.Tag)
				}
				plan.WriteByte('\n')
			}
			if err := confirm(cmd, yes, plan.String(), fmt.Sprintf("delete these %d manifests", len(steps))); err != nil {
				return err
			}
			result, err := client.DeleteGraph(ctx, target, graph)
			if err != nil {
				return err
			}
			return reportDeleted(cmd, &format, result)
		}),
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask")
	format.add(cmd, "output `format`: text or json", formatText, formatJSON)
	return cmd
}

func artifactLabel(artifactType, mediaType string) string {
	if artifactType != "" {
		return artifactType
	}
	return mediaType
}

// reportDeleted prints what a delete removed, and fails it when locked manifests had to
// stay: the delete did not do all it was asked.
func reportDeleted(cmd *cobra.Command, format *formatFlag, result client.DeleteResult) error {
	if format.JSON() {
		if err := client.WriteJSON(cmd.OutOrStdout(), result); err != nil {
			return err
		}
	} else {
		for _, d := range result.Deleted {
			fmt.Fprintln(cmd.OutOrStdout(), d)
		}
	}
	if len(result.Locked) == 0 {
		return nil
	}
	return fmt.Errorf("kept %d locked manifests (%s…) and what hangs under them: unlock them to delete them: %w",
		len(result.Locked), result.Locked[0], client.ErrDenied)
}
