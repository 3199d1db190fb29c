package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"
	"oras.land/oras-go/v2"

	"github.com/graft-registry/graft/internal/client"
)

// fetchedJSON is what manifest get and manifest config print with --format json.
type fetchedJSON struct {
	Descriptor ocispec.Descriptor `json:"descriptor"`
	Content    any                `json:"content"`
}

// printFetched prints content as stored, or with its descriptor as JSON; content that
// is not JSON is base64 there.
func printFetched(cmd *cobra.Command, format *formatFlag, desc ocispec.Descriptor, b []byte) error {
	if format.JSON() {
		var c any = b
		if json.Valid(b) {
			c = json.RawMessage(b)
		}
		return client.WriteJSON(cmd.OutOrStdout(), fetchedJSON{Descriptor: desc, Content: c})
	}
	_, err := cmd.OutOrStdout().Write(b)
	return err
}

func manifestCommand(g *clientFlags) *cobra.Command {
	return group("manifest", "Get, put and delete manifests",
		manifestGetCommand(g), manifestConfigCommand(g), manifestPutCommand(g), manifestDeleteCommand(g))
}

func manifestGetCommand(g *clientFlags) *cobra.Command {
	return fetchCommand(g, "get REF", "Print a manifest, byte for byte as the registry stores it", client.FetchManifest)
}

func manifestConfigCommand(g *clientFlags) *cobra.Command {
	return fetchCommand(g, "config REF", "Print the config blob of an image manifest", client.FetchConfig)
}

// fetchCommand is a verb that prints what fetch reads for REF: as stored, or with its
// descriptor as JSON.
func fetchCommand(g *clientFlags, use, short string,
	fetch func(context.Context, oras.ReadOnlyTarget, client.Reference) (ocispec.Descriptor, []byte, error)) *cobra.Command {
	var format formatFlag
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  args(cobra.ExactArgs(1)),
		RunE: run(func(ctx context.Context, cmd *cobra.Command, a []string) error {
			ref, target, err := g.open(ctx, cmd, a[0], false)
			if err != nil {
				return err
			}
			desc, b, err := fetch(ctx, target, ref)
			if err != nil {
				return err
			}
			return printFetched(cmd, &format, desc, b)
		}),
	}
	format.add(cmd, "output `format`: raw (as stored) or json (the descriptor and the content)", formatRaw, formatJSON)
	return cmd
}

func manifestPutCommand(g *clientFlags) *cobra.Command {
	var (
		mediaType string
		format    formatFlag
	)
	cmd := &cobra.Command{
		Use:   "put REF [FILE]",
		Short: "Store a manifest read from FILE or standard input",
		Long: `Store a manifest, read from FILE or standard input, tagged if REF names a tag.
Its media type is --media-type, or the manifest's own mediaType field.

Prints the manifest's reference by digest.`,
		Args: args(cobra.RangeArgs(1, 2)),
		RunE: run(func(ctx context.Context, cmd *cobra.Command, a []string) error {
			ref, err := client.ParseReference(a[0])
			if err != nil {
				return err
			}
			in := cmd.InOrStdin()
			if len(a) == 2 && a[1] != "-" {
				f, err := os.Open(a[1])
				if err != nil {
					return &client.UsageError{Err: err}
				}
				defer f.Close()
				in = f
			}
			body, err := io.ReadAll(io.LimitReader(in, 4<<20+1))
			if err != nil {
				return fmt.Errorf("reading the manifest: %w", err)
			}
			target, err := g.options(cmd).Open(ctx, ref, true)
			if err != nil {
				return err
			}
			desc, err := client.PutManifest(ctx, target, ref, mediaType, body)
			if err != nil {
				return err
			}
			return printPushed(cmd, &format, ref, desc)
		}),
	}
	cmd.Flags().StringVar(&mediaType, "media-type", "", "the manifest's media `type` (default: its mediaType field)")
	format.add(cmd, "output `format`: text or json", formatText, formatJSON)
	return cmd
}

func manifestDeleteCommand(g *clientFlags) *cobra.Command {
	var (
		yes    bool
		format formatFlag
	)
	cmd := &cobra.Command{
		Use:   "delete REF",
		Short: "Delete one manifest",
		Long: `Delete the manifest REF names (by tag or digest), and only it; graft delete
deletes its referrers too. A graft registry configured to cascade removes the
referrers anyway, and says so: the digests printed are what it removed.

graft asks first; --yes does not ask.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: run(func(ctx context.Context, cmd *cobra.Command, a []string) error {
			ref, target, err := g.open(ctx, cmd, a[0], false)
			if err != nil {
				return err
			}
			desc, err := client.Resolve(ctx, target, ref)
			if err != nil {
				return err
			}
			if err := confirm(cmd, yes, "", fmt.Sprintf("delete manifest %s", ref.WithReference(desc.Digest.String()))); err != nil {
				return err
			}
			result, err := client.DeleteManifest(ctx, target, desc)
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

func blobCommand(g *clientFlags) *cobra.Command {
	return group("blob", "Get, put and delete blobs",
		blobGetCommand(g), blobPutCommand(g), blobDeleteCommand(g))
}

func blobGetCommand(g *clientFlags) *cobra.Command {
	var (
		file   string
		format formatFlag
	)
	cmd := &cobra.Command{
		Use:   "get REPOSITORY@DIGEST",
		Short: "Write a blob to standard output or a file, checked against its digest",
		Long: `Write a blob to standard output, or to --file. With --format json, print the
blob's descriptor (and write the content only to --file, if given).`,
		Args: args(cobra.ExactArgs(1)),
		RunE: run(func(ctx context.Context, cmd *cobra.Command, a []string) error {
			ref, err := client.ParseReference(a[0])
			if err != nil {
				return err
			}
			repo, err := g.options(cmd).Repository(ref)
			if err != nil {
				return err
			}
			desc, rc, err := client.FetchBlob(ctx, repo, ref)
			if err != nil {
				return err
			}
			defer rc.Close()
			if format.JSON() && file == "" {
				return client.WriteJSON(cmd.OutOrStdout(), desc)
			}
			out := cmd.OutOrStdout()
			if file != "" {
				f, err := os.Create(file)
				if err != nil {
					return &client.UsageError{Err: err}
				}
				defer f.Close()
				out = f
			}
			if _, err := io.Copy(out, rc); err != nil {
				if file != "" {
					os.Remove(file)
				}
				return fmt.Errorf("fetching blob %s: %w", ref, err)
			}
			if format.JSON() {
				return client.WriteJSON(cmd.OutOrStdout(), desc)
			}
			return nil
		}),
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "write the blob to `path` instead of standard output")
	format.add(cmd, "output `format`: raw (the blob) or json (the descriptor)", formatRaw, formatJSON)
	return cmd
}

func blobPutCommand(g *clientFlags) *cobra.Command {
	var (
		mediaType string
		format    formatFlag
	)
	cmd := &cobra.Command{
		Use:   "put REPOSITORY FILE",
		Short: "Upload a file as a blob; prints REPOSITORY@DIGEST",
		Args:  args(cobra.ExactArgs(2)),
		RunE: run(func(ctx context.Context, cmd *cobra.Command, a []string) error {
			ref, err := client.ParseReference(a[0])
			if err != nil {
				return err
			}
			repo, err := g.options(cmd).Repository(ref)
			if err != nil {
				return err
			}
			desc, err := client.PushBlob(ctx, repo, a[1], mediaType)
			if err != nil {
				return err
			}
			return printPushed(cmd, &format, ref, desc)
		}),
	}
	cmd.Flags().StringVar(&mediaType, "media-type", "application/octet-stream", "media `type` of the descriptor printed with --format json")
	format.add(cmd, "output `format`: text or json", formatText, formatJSON)
	return cmd
}

func blobDeleteCommand(g *clientFlags) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete REPOSITORY@DIGEST",
		Short: "Delete a blob from a repository",
		Long:  `Delete a blob from a repository. graft asks first; --yes does not ask.`,
		Args:  args(cobra.ExactArgs(1)),
		RunE: run(func(ctx context.Context, cmd *cobra.Command, a []string) error {
			ref, err := client.ParseReference(a[0])
			if err != nil {
				return err
			}
			repo, err := g.options(cmd).Repository(ref)
			if err != nil {
				return err
			}
			if err := confirm(cmd, yes, "", fmt.Sprintf("delete blob %s", ref)); err != nil {
				return err
			}
			if err := client.DeleteBlob(ctx, repo, ref); err != nil {
				return err
			}
			g.status(cmd, "Deleted %s", ref)
			return nil
		}),
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask")
	return cmd
}

func tagCommand(g *clientFlags) *cobra.Command {
	return group("tag", "List, add and delete tags",
		tagListCommand(g), tagAddCommand(g), tagDeleteCommand(g))
}

func tagListCommand(g *clientFlags) *cobra.Command {
	var format formatFlag
	cmd := &cobra.Command{
		Use:     "list REPOSITORY",
		Aliases: []string{"ls"},
		Short:   "List the tags of a repository or OCI layout",
		Long: `List the tags of a repository (HOST/REPOSITORY) or OCI layout (oci:DIR), in the
registry's order, one a line, or as {"tags": [...]} with --format json. The tags
of the referrers tag schema (sha256-<hex>) are listed like any other.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: run(func(ctx context.Context, cmd *cobra.Command, a []string) error {
			ref, target, err := g.open(ctx, cmd, a[0], false)
			if err != nil {
				return err
			}
			tags, err := client.Tags(ctx, target)
			if err != nil {
				return fmt.Errorf("%s: %w", ref.Repo(), err)
			}
			if format.JSON() {
				return client.WriteJSON(cmd.OutOrStdout(), struct {
					Tags []string `json:"tags"`
				}{tags})
			}
			for _, t := range tags {
				fmt.Fprintln(cmd.OutOrStdout(), t)
			}
			return nil
		}),
	}
	format.add(cmd, "output `format`: text or json", formatText, formatJSON)
	return cmd
}

func tagAddCommand(g *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "add REF TAG...",
		Short: "Tag the manifest REF names with more tags",
		Args:  args(cobra.MinimumNArgs(2)),
		RunE: run(func(ctx context.Context, cmd *cobra.Command, a []string) error {
			ref, target, err := g.open(ctx, cmd, a[0], false)
			if err != nil {
				return err
			}
			desc, err := client.AddTags(ctx, target, ref, a[1:])
			if err != nil {
				return err
			}
			for _, t := range a[1:] {
				fmt.Fprintln(cmd.OutOrStdout(), ref.WithReference(t))
			}
			g.status(cmd, "Tagged %s", ref.WithReference(desc.Digest.String()))
			return nil
		}),
	}
	return cmd
}

func tagDeleteCommand(g *clientFlags) *cobra.Command {
	var format formatFlag
	cmd := &cobra.Command{
		Use:     "delete REPOSITORY:TAG",
		Aliases: []string{"rm"},
		Short:   "Delete a tag, and only the tag",
		Long: `Delete the tag REF names (HOST/REPOSITORY:TAG or oci:DIR:TAG), and only the tag: the
manifest stays, with its other tags and its referrers, and graft tag add puts the
tag back. graft manifest delete and graft delete delete manifests.

Prints the manifest the tag named, by digest.`,
		Example: `  graft tag delete localhost:5000/demo/app:rc1`,
		Args:    args(cobra.ExactArgs(1)),
		RunE: run(func(ctx context.Context, cmd *cobra.Command, a []string) error {
			ref, target, err := g.open(ctx, cmd, a[0], false)
			if err != nil {
				return err
			}
			desc, err := client.DeleteTag(ctx, target, ref)
			if err != nil {
				return err
			}
			g.status(cmd, "Deleted tag %s (it named %s)", ref, desc.Digest)
			return printPushed(cmd, &format, ref, desc)
		}),
	}
	format.add(cmd, "output `format`: text or json", formatText, formatJSON)
	return cmd
}

func repoCommand(g *clientFlags) *cobra.Command {
	return group("repo", "List and delete repositories",
		repoListCommand(g), repoDeleteCommand(g))
}

func repoDeleteCommand(g *clientFlags) *cobra.Command {
	var (
		yes    bool
		format formatFlag
	)
	cmd := &cobra.Command{
		Use:   "delete HOST/REPOSITORY",
		Short: "Delete a repository with everything in it (graft)",
		Long: `Delete a repository with every graph in it: its manifests, tags and referrers. It
leaves the catalog; a later push to the name creates it anew. The blobs that only it
used are removed by the next garbage collection. A repository in which anything is
locked (graft lock) is refused, exit code 4: unlock it first.

This is graft's metadata API (DELETE /graft/v1/<name>), and needs the delete right
on the repository. graft asks first; --yes does not ask.`,
		Example: `  graft repo delete localhost:5000/demo/app --yes`,
		Args:    args(cobra.ExactArgs(1)),
		RunE: run(func(ctx context.Context, cmd *cobra.Command, a []string) error {
			ref, err := client.ParseReference(a[0])
			if err != nil {
				return err
			}
			if ref.Reference != "" {
				return &client.UsageError{Err: fmt.Errorf("%s names a manifest: graft repo delete takes a repository (graft manifest delete deletes a manifest)", a[0])}
			}
			repo, err := g.options(cmd).Repository(ref)
			if err != nil {
				return err
			}
			if err := confirm(cmd, yes, "", fmt.Sprintf("delete repository %s with everything in it", ref)); err != nil {
				return err
			}
			deleted, err := client.DeleteRepository(ctx, repo)
			if err != nil {
				return err
			}
			g.status(cmd, "Deleted repository %s: %s, %s", ref, plural(int(deleted.Manifests), "manifest"), plural(int(deleted.Tags), "tag"))
			if format.JSON() {
				return client.WriteJSON(cmd.OutOrStdout(), deleted)
			}
			return nil
		}),
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask")
	format.add(cmd, "output `format`: text (a status line on stderr only) or json", formatText, formatJSON)
	return cmd
}

func repoListCommand(g *clientFlags) *cobra.Command {
	var format formatFlag
	cmd := &cobra.Command{
		Use:     "list HOST",
		Aliases: []string{"ls"},
		Short:   "List the repositories of a registry (its catalog)",
		Args:    args(cobra.ExactArgs(1)),
		RunE: run(func(ctx context.Context, cmd *cobra.Command, a []string) error {
			reg, err := g.options(cmd).Registry(a[0])
			if err != nil {
				return err
			}
			repos, err := client.Repositories(ctx, reg)
			if err != nil {
				return err
			}
			if format.JSON() {
				return client.WriteJSON(cmd.OutOrStdout(), struct {
					Repositories []string `json:"repositories"`
				}{repos})
			}
			for _, r := range repos {
				fmt.Fprintln(cmd.OutOrStdout(), r)
			}
			return nil
		}),
	}
	format.add(cmd, "output `format`: text or json", formatText, formatJSON)
	return cmd
}
