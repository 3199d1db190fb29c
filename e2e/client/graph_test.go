package client

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

const (
	typeSBOM      = "application/spdx+json"
	typeSignature = "application/vnd.example.signature"
	// the layer of cosign's signatures, by which graft types them
	typeSimpleSigning = "application/vnd.dev.cosign.simplesigning.v1+json"
)

// buildImage writes an OCI image (a tar layer and its config) into an OCI layout in
// g's working directory with graft push, and returns its reference there.
func buildImage(t *testing.T, g *graft, layout string) string {
	t.Helper()
	g.WriteFile("app.tar", "not really a tar, but bytes all the same\n")
	g.WriteFile("config.json", `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	ref := "oci:" + layout + ":v1"
	g.Must("push", ref, "app.tar:application/vnd.oci.image.layer.v1.tar", "--config", "config.json:application/vnd.oci.image.config.v1+json")
	return ref
}

// attachGraph attaches an SBOM to image and a signature to the SBOM, and returns
// their references by digest.
func attachGraph(t *testing.T, g *graft, image string) (sbom, sig string) {
	t.Helper()
	g.WriteFile("sbom.spdx.json", `{"spdxVersion":"SPDX-2.3","name":"app"}`)
	g.WriteFile("sbom.sig", "a signature of the SBOM\n")
	sbom = strings.TrimSpace(g.Must("attach", image, "sbom.spdx.json:"+typeSBOM, "--artifact-type", typeSBOM))
	sig = strings.TrimSpace(g.Must("attach", sbom, "sbom.sig", "--artifact-type", typeSignature))
	return sbom, sig
}

// schemaTag is the tag the referrers tag schema names the artifacts of the manifest d
// by: its fallback index's, and with a suffix, cosign's.
func schemaTag(d string) string { return strings.Replace(d, ":", "-", 1) }

func digestOf(t *testing.T, ref string) string {
	t.Helper()
	_, d, ok := strings.Cut(ref, "@")
	if !ok {
		t.Fatalf("%q is not a reference by digest", ref)
	}
	if _, err := digest.Parse(d); err != nil {
		t.Fatalf("%q: %v", ref, err)
	}
	return d
}

// TestGraphWorkflow runs the whole workflow against graft and against CNCF
// distribution: the client must not depend on graft's server.
func TestGraphWorkflow(t *testing.T) {
	t.Parallel()
	for _, reg := range registries(t) {
		t.Run(reg.name, func(t *testing.T) {
			t.Parallel()
			g := newGraft(t)
			image := reg.addr + "/demo/app:v1"
			g.Must("copy", buildImage(t, g, "layout"), image)
			sbom, sig := attachGraph(t, g, image)

			got := g.discover(image)
			if len(got.Referrers) != 1 || got.Referrers[0].Digest != digestOf(t, sbom) || got.Referrers[0].ArtifactType != typeSBOM {
				t.Fatalf("referrers of the image: %s", got.shape())
			}
			sbomNode := got.Referrers[0]
			if len(sbomNode.Referrers) != 1 || sbomNode.Referrers[0].Digest != digestOf(t, sig) || sbomNode.Referrers[0].ArtifactType != typeSignature {
				t.Fatalf("referrers of the SBOM: %s", got.shape())
			}
			if want := reg.addr + "/demo/app@" + digestOf(t, sig); sbomNode.Referrers[0].Reference != want {
				t.Errorf("signature's reference %q, want %q", sbomNode.Referrers[0].Reference, want)
			}

			// the fallback tag schema is written exactly where there is no referrers API
			tags := strings.Fields(g.Must("tag", "list", reg.addr+"/demo/app"))
			fallback := "sha256-" + strings.TrimPrefix(got.Digest, "sha256:")
			if has := slices.Contains(tags, fallback); has == reg.referrersAPI {
				t.Errorf("tags %v: fallback tag %s present: %v, want %v", tags, fallback, has, !reg.referrersAPI)
			}

			t.Run("depth and filter", func(t *testing.T) {
				tree := g.Must("discover", "--depth", "1", image)
				if !strings.Contains(tree, digestOf(t, sbom)) || strings.Contains(tree, digestOf(t, sig)) {
					t.Errorf("--depth 1 shows:\n%s", tree)
				}
				// the signature is not the image's: filtering on its type finds nothing
				if sigs := g.discover(image, "--artifact-type", typeSignature); len(sigs.Referrers) != 0 {
					t.Errorf("--artifact-type %s: %s", typeSignature, sigs.shape())
				}
				// filtering on the SBOM's type keeps what refers to the SBOM
				if sboms := g.discover(image, "--artifact-type", typeSBOM); sboms.shape() != got.shape() {
					t.Errorf("--artifact-type %s: %s, want %s", typeSBOM, sboms.shape(), got.shape())
				}
			})

			t.Run("pull", func(t *testing.T) {
				out := filepath.Join(g.Dir, "pulled")
				files := g.Must("pull", sbom, out)
				if strings.TrimSpace(files) != filepath.Join(out, "sbom.spdx.json") {
					t.Errorf("pull printed %q", files)
				}
				b, err := os.ReadFile(filepath.Join(out, "sbom.spdx.json"))
				if err != nil || string(b) != `{"spdxVersion":"SPDX-2.3","name":"app"}` {
					t.Errorf("pulled SBOM: %q, %v", b, err)
				}
				// the subject, an image, is not pulled along
				entries, _ := os.ReadDir(out)
				if len(entries) != 1 {
					t.Errorf("pull wrote %d files, want 1", len(entries))
				}
			})

			t.Run("delete", func(t *testing.T) {
				other := reg.addr + "/demo/copy:v1"
				g.Must("copy", "-r", image, other)
				if shape := g.discover(other).shape(); shape != got.shape() {
					t.Fatalf("copy within the registry: %s, want %s", shape, got.shape())
				}
				g.Fail(6, "delete", other) // no terminal, no --yes
				want := []string{digestOf(t, sig), digestOf(t, sbom), got.Digest}
				if !reg.referrersAPI {
					// the fallback indexes of the image and the SBOM go with them
					for _, subject := range want[1:] {
						want = append(want, g.manifestDigest(reg.addr+"/demo/copy:"+schemaTag(subject)))
					}
				}
				deleted := strings.Fields(g.Must("delete", "--yes", other))
				slices.Sort(deleted)
				slices.Sort(want)
				if !slices.Equal(deleted, want) {
					t.Errorf("deleted %v, want %v", deleted, want)
				}
				for _, d := range want {
					g.Fail(3, "manifest", "get", reg.addr+"/demo/copy@"+d)
				}
				if tags := g.Run("", "tag", "list", reg.addr+"/demo/copy"); strings.TrimSpace(tags.Stdout) != "" {
					t.Errorf("tags left after the delete: %s", tags.Stdout)
				}
				// the original graph is untouched
				if shape := g.discover(image).shape(); shape != got.shape() {
					t.Errorf("after deleting the copy, the original is %s, want %s", shape, got.shape())
				}
			})
		})
	}
}

// TestCopyAcrossRegistries copies a graph from graft to distribution (which has no
// referrers API: the client writes the tag schema), back from distribution to graft
// (reading it), and into an OCI layout; the graph is the same everywhere.
func TestCopyAcrossRegistries(t *testing.T) {
	t.Parallel()
	regs := registries(t)
	graftAddr, distAddr := regs[0].addr, regs[1].addr
	g := newGraft(t)
	image := graftAddr + "/demo/app:v1"
	g.Must("copy", buildImage(t, g, "layout"), image)
	attachGraph(t, g, image)
	want := g.discover(image).shape()

	g.Must("copy", "-r", image, distAddr+"/mirror/app")
	if got := g.discover(distAddr + "/mirror/app:v1").shape(); got != want {
		t.Errorf("on distribution:\n%s\nwant:\n%s", got, want)
	}
	tags := g.Must("tag", "list", distAddr+"/mirror/app")
	if n := strings.Count(tags, "sha256-"); n != 2 { // the image's and the SBOM's referrers
		t.Errorf("distribution has %d referrers tags, want 2:\n%s", n, tags)
	}

	g.Must("copy", "-r", distAddr+"/mirror/app:v1", graftAddr+"/back/app:v2")
	if got := g.discover(graftAddr + "/back/app:v2").shape(); got != want {
		t.Errorf("copied back to graft:\n%s\nwant:\n%s", got, want)
	}
	if tags := g.Must("tag", "list", graftAddr+"/back/app"); strings.TrimSpace(tags) != "v2" {
		t.Errorf("graft got tags %q: the referrers tags of distribution must not be copied", tags)
	}

	g.Must("copy", "-r", image, "oci:exported")
	if got := g.discover("oci:exported:v1").shape(); got != want {
		t.Errorf("in an OCI layout:\n%s\nwant:\n%s", got, want)
	}
	// without -r, only the image
	g.Must("copy", image, "oci:bare")
	if got := g.discover("oci:bare:v1"); len(got.Referrers) != 0 {
		t.Errorf("copy without -r brought referrers: %s", got.shape())
	}
}
