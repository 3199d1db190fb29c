package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/graft-registry/graft/internal/client"
)

// pushedJSON is what push, attach and copy print with --format json.
type pushedJSON struct {
	Reference string `json:"reference"`
	ocispec.Descriptor
}

// printPushed prints the reference of what a verb pushed, on stdout, where scripts
// pick it up: sbom=$(graft attach …).
func printPushed(cmd *cobra.Command, format *formatFlag, ref client.Reference, desc ocispec.Descriptor) error {
	byDigest := ref.WithReference(desc.Digest.String()).String()
	if format.JSON() {
		return client.WriteJSON(cmd.OutOrStdout(), pushedJSON{Reference: byDigest, Descriptor: desc})
	}
	_, err := fmt.Fprintln(cmd.OutOrStdout(), byDigest)
	return err
}

// copiedJSON is what copy prints with --format json: what push prints, and what it
// copied.
type copiedJSON struct {
	pushedJSON
	Copied client.CopyResult `json:"copied"`
}

// copyReport says what a copy did: "3 manifests (2 referrers), 5 blobs, 1.2 KiB; 1
// already there".
func copyReport(r client.CopyResult, recursive bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s", plural(r.Manifests, "manifest"))
	if recursive {
		fmt.Fprintf(&b, " (%s found)", plural(r.Referrers, "referrer"))
	}
	fmt.Fprintf(&b, ", %s, %s copied", plural(r.Blobs, "blob"), byteSize(r.Bytes))
	if r.Present > 0 {
		fmt.Fprintf(&b, "; %d already there", r.Present)
	}
	return b.String()
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// byteSize is n in bytes, KiB, MiB or GiB, as the progress bars count.
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return plural(int(n), "byte")
	}
	size, prefix := float64(n)/unit, "KMGTPE"
	for size >= unit && len(prefix) > 1 {
		size, prefix = size/unit, prefix[1:]
	}
	return fmt.Sprintf("%.1f %ciB", size, prefix[0])
}

// pushFlags are the flags push and attach share.
type pushFlags struct {
	artifactType string
	annotations  []string
	format       formatFlag
}

func (p *pushFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&p.artifactType, "artifact-type", "", "the manifest's artifactType")
	f.StringArrayVarP(&p.annotations, "annotation", "a", nil, "manifest annotation `key=value` (repeatable)")
	p.format.add(cmd, "output `format`: text or json", formatText, formatJSON)
}

func (p *pushFlags) options() (client.PushOptions, error) {
	opts := client.PushOptions{ArtifactType: p.artifactType}
	for _, a := range p.annotations {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return client.PushOptions{}, &client.UsageError{Err: fmt.Errorf("--annotation %q: want key=value", a)}
		}
		if opts.Annotations == nil {
			opts.Annotations = map[string]string{}
		}
		opts.Annotations[k] = v
	}
	return opts, nil
}

func files(args []string) []client.File {
	out := make([]client.File, len(args))
	for i, a := range args {
		out[i] = client.ParseFile(a, client.DefaultLayerMediaType)
	}
	return out
}

func pushCommand(g *clientFlags) *cobra.Command {
	var (
		p      pushFlags
		config string
	)
	cmd := &cobra.Command{
		Use:   "push REF FILE[:MEDIATYPE]...",
		Short: "Push files as an artifact or image",
		Long: `Push files as the layers of an OCI image manifest, tagged as REF says. REF is a
registry reference (HOST/REPOSITORY:TAG) or an OCI image layout directory
(oci:DIR:TAG), which is created if needed.

Without --config the manifest is an artifact, as image-spec v1.1 describes: the
empty config and an --artifact-type (application/vnd.unknown.artifact.v1 if
none is given). With --config FILE[:MEDIATYPE] it is an image with that config.
Each layer is named by its file's base name (org.opencontainers.image.title), so
that pull writes it back under that name. Layers are
application/vnd.oci.image.layer.v1.tar unless FILE:MEDIATYPE says otherwise.

org.opencontainers.image.created is set to SOURCE_DATE_EPOCH when that is set, so
that the same files push the same digests; to now otherwise.

Prints the pushed manifest's reference by digest.`,
		Example: `  graft push localhost:5000/demo/notes:v1 notes.txt:text/plain --artifact-type application/vnd.example.notes
  graft push oci:layout:v1 app.tar --config config.json:application/vnd.oci.image.config.v1+json`,
		Args: args(cobra.MinimumNArgs(2)),
		RunE: run(func(ctx context.Context, cmd *cobra.Command, a []string) error {
			ref, err := client.ParseReference(a[0])
			if err != nil {
				return err
			}
			if ref.Tag() == "" {
				return &client.UsageError{Err: fmt.Errorf("%s: push needs a tag: REF:TAG", ref)}
			}
			opts, err := p.options()
			if err != nil {
				return err
			}
			if config != "" {
				f := client.ParseFile(config, client.DefaultConfigMediaType)
				opts.Config = &f
			}
			dst, err := g.options(cmd).Open(ctx, ref, true)
			if err != nil {
				return err
			}
			opts.Tag, opts.Progress = ref.Reference, g.progress()
			desc, err := client.Push(ctx, dst, files(a[1:]), opts)
			opts.Progress.Wait()
			if err != nil {
				return fmt.Errorf("pushing to %s: %w", ref, err)
			}
			g.status(cmd, "Pushed %s (%s)", ref, desc.Digest)
			return printPushed(cmd, &p.format, ref, desc)
		}),
	}
	p.add(cmd)
	cmd.Flags().StringVar(&config, "config", "", "config blob `FILE[:MEDIATYPE]`: push an image, not an artifact")
	return cmd
}

func attachCommand(g *clientFlags) *cobra.Command {
	var p pushFlags
	cmd := &cobra.Command{
		Use:   "attach REF FILE[:MEDIATYPE]... --artifact-type TYPE",
		Short: "Attach files to a manifest as an artifact that refers to it",
		Long: `Push files as an artifact whose subject is the manifest REF names: an OCI image
manifest with the empty config and an artifactType, as image-spec v1.1 describes.
It shows up in the referrers of REF (graft discover REF). A registry without the
referrers API gets the referrers tag schema (a sha256-<hex> index) updated instead.

Prints the artifact's reference by digest, so that an artifact can be attached to
it in turn: sig=$(graft attach "$sbom" …).`,
		Example: `  sbom=$(graft attach localhost:5000/demo/app:v1 sbom.spdx.json:application/spdx+json --artifact-type application/spdx+json)
  graft attach "$sbom" sbom.sig --artifact-type application/vnd.example.signature`,
		Args: args(cobra.MinimumNArgs(2)),
		RunE: run(func(ctx context.Context, cmd *cobra.Command, a []string) error {
			ref, err := client.ParseReference(a[0])
			if err != nil {
				return err
			}
			opts, err := p.options()
			if err != nil {
				return err
			}
			if opts.ArtifactType == "" {
				return &client.UsageError{Err: fmt.Errorf("attach needs --artifact-type: what the files are to %s", ref)}
			}
			target, err := g.options(cmd).Open(ctx, ref, false)
			if err != nil {
				return err
			}
			subject, err := client.Resolve(ctx, target, ref)
			if err != nil {
				return err
			}
			opts.Subject, opts.Progress = &subject, g.progress()
			desc, err := client.Push(ctx, target, files(a[1:]), opts)
			opts.Progress.Wait()
			if err != nil {
				return fmt.Errorf("attaching to %s: %w", ref, err)
			}
			g.status(cmd, "Attached %s to %s", opts.ArtifactType, ref.WithReference(subject.Digest.String()))
			return printPushed(cmd, &p.format, ref, desc)
		}),
	}
	p.add(cmd)
	return cmd
}

func pullCommand(g *clientFlags) *cobra.Command {
	var format formatFlag
	cmd := &cobra.Command{
		Use:   "pull REF [DIR]",
		Short: "Pull the files of an artifact into a directory",
		Long: `Write the layers of the manifest REF names that carry a file name
(org.opencontainers.image.title, as push and attach set it) into DIR (the current
directory if none is given), under that name; for an index, those of every manifest
it lists. The subject of an artifact is not pulled, nor are layers without a name (an
image's filesystem layers). Every blob is checked against its digest.

Prints the paths written.`,
		Example: `  graft pull localhost:5000/demo/app@sha256:… sbom/`,
		Args:    args(cobra.RangeArgs(1, 2)),
		RunE: run(func(ctx context.Context, cmd *cobra.Command, a []string) error {
			dir := "."
			if len(a) == 2 {
				dir = a[1]
			}
			ref, src, err := g.open(ctx, cmd, a[0], false)
			if err != nil {
				return err
			}
			root, err := client.Resolve(ctx, src, ref)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("creating %s: %w", dir, err)
			}
			progress := g.progress()
			result, err := client.Pull(ctx, src, root, dir, progress)
			progress.Wait()
			if err != nil {
				return err
			}
			if result.Skipped > 0 {
				g.status(cmd, "Skipped %d layers without a file name", result.Skipped)
			}
			g.status(cmd, "Pulled %s (%s) into %s", ref, root.Digest, dir)
			if format.JSON() {
				return client.WriteJSON(cmd.OutOrStdout(), result)
			}
			for _, f := range result.Files {
				fmt.Fprintln(cmd.OutOrStdout(), f)
			}
			return nil
		}),
	}
	format.add(cmd, "output `format`: text (the paths written) or json", formatText, formatJSON)
	return cmd
}

func copyCommand(g *clientFlags) *cobra.Command {
	var (
		recursive bool
		format    formatFlag
	)
	cmd := &cobra.Command{
		Use:   "copy SRC DST",
		Short: "Copy an image or artifact, with its referrers, between registries and OCI layouts",
		Long: `Copy the manifest SRC names, and everything it references, to DST. Either may be a
registry reference or an OCI image layout (oci:DIR[:TAG], created if needed as a
destination). DST without a tag takes SRC's tag; a SRC named by digest is copied by
digest.

With -r the artifacts come along, as graft discover shows them, recursively
(signatures of SBOMs too), and for an index those of every manifest it lists.
cosign's tag-schema artifacts (sha256-<hex>.sig, .att, .sbom) get the same tags at
the destination, so that cosign verify finds them there; graft does not move such a
tag there from a manifest holding signatures the source's lacks. A destination
registry without the referrers API gets the fallback index (sha256-<hex> index tags)
written for the referrers, which graft discover reads back there.

Prints the copy's reference by digest.`,
		Example: `  graft copy oci:layout:v1 localhost:5000/demo/app:v1
  graft copy -r localhost:5000/demo/app:v1 registry.example.com/demo/app`,
		Aliases: []string{"cp"},
		Args:    args(cobra.ExactArgs(2)),
		RunE: run(func(ctx context.Context, cmd *cobra.Command, a []string) error {
			srcRef, err := client.ParseReference(a[0])
			if err != nil {
				return err
			}
			dstRef, err := client.ParseReference(a[1])
			if err != nil {
				return err
			}
			opts := g.options(cmd)
			src, err := opts.Open(ctx, srcRef, false)
			if err != nil {
				return err
			}
			root, err := client.Resolve(ctx, src, srcRef)
			if err != nil {
				return err
			}
			tag := dstRef.Tag()
			if dstRef.Reference == "" {
				tag = srcRef.Tag()
			} else if d, ok := dstRef.Digest(); ok && d != root.Digest {
				return &client.UsageError{Err: fmt.Errorf("%s is %s, not the digest %s names", srcRef, root.Digest, dstRef)}
			}
			dst, err := opts.Open(ctx, dstRef, true)
			if err != nil {
				return err
			}
			progress := g.progress()
			result, err := client.Copy(ctx, src, dst, root, tag, client.CopyOptions{Recursive: recursive, Progress: progress})
			progress.Wait()
			if err != nil {
				return fmt.Errorf("copying %s to %s: %w", srcRef, dstRef, err)
			}
			copied := dstRef.WithReference(tag)
			if tag == "" {
				copied = dstRef.WithReference(root.Digest.String())
			}
			g.status(cmd, "Copied %s to %s: %s", srcRef, copied, copyReport(result, recursive))
			if format.JSON() {
				return client.WriteJSON(cmd.OutOrStdout(), copiedJSON{
					pushedJSON: pushedJSON{Reference: dstRef.WithReference(root.Digest.String()).String(), Descriptor: root},
					Copied:     result,
				})
			}
			return printPushed(cmd, &format, dstRef, root)
		}),
	}
	cmd.Flags().BoolVarP(&recursive, "recursive", "r", false, "copy the artifacts (referrers, tag-schema signatures) too, recursively")
	format.add(cmd, "output `format`: text or json", formatText, formatJSON)
	return cmd
}
