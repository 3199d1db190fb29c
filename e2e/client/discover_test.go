package client

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files of discover's output")

// TestDiscoverGolden pins the output of discover in each format. The inputs are fixed
// and SOURCE_DATE_EPOCH fixes the created annotation, so the digests are too; the
// registry's address is replaced by REGISTRY.
func TestDiscoverGolden(t *testing.T) {
	t.Parallel()
	// the same graph prints the same on a registry without the referrers API
	for _, reg := range registries(t) {
		t.Run(reg.name, func(t *testing.T) {
			t.Parallel()
			g := newGraft(t)
			image := reg.addr + "/golden/app:v1"
			imageDigest := digestOf(t, strings.TrimSpace(g.Must("copy", buildImage(t, g, "layout"), image)))
			sbom, _ := attachGraph(t, g, image)
			g.WriteFile("image.sig", "a signature of the image\n")
			g.WriteFile("provenance.json", `{"_type":"https://in-toto.io/Statement/v1"}`)
			g.Must("attach", image, "image.sig", "--artifact-type", typeSignature)
			g.Must("attach", image, "provenance.json:application/vnd.in-toto+json", "--artifact-type", "application/vnd.in-toto+json",
				"--annotation", "org.example.kind=provenance")
			// signatures as cosign makes them by default: no subject, a tag that names it
			pushTagSchemaSignature(t, g, reg.addr+"/golden/app", imageDigest, "the image")
			pushTagSchemaSignature(t, g, reg.addr+"/golden/app", digestOf(t, sbom), "the SBOM")

			for _, format := range []string{"tree", "table", "json"} {
				got := strings.ReplaceAll(g.Must("discover", "-o", format, image), reg.addr, "REGISTRY")
				path := filepath.Join("testdata", "discover."+format)
				if *update && reg.referrersAPI {
					if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run with -update to write it)", err)
				}
				if got != string(want) {
					t.Errorf("discover -o %s:\n%s\nwant (%s):\n%s", format, got, path, want)
				}
			}
		})
	}
}

// pushTagSchemaSignature pushes a signature of subject (a digest) into repo as cosign
// does by default, fixed for the golden files: a manifest with a plain image config
// and a simple-signing layer, no subject, tagged sha256-<hex>.sig.
func pushTagSchemaSignature(t *testing.T, g *graft, repo, subject, what string) string {
	t.Helper()
	g.WriteFile("payload.json", `{"critical":{"type":"cosign container image signature","signed":"`+what+`"}}`)
	g.WriteFile("cosign-config.json", `{"architecture":"","os":"","rootfs":{"type":"layers","diff_ids":[]}}`)
	tag := schemaTag(subject) + ".sig"
	return strings.TrimSpace(g.Must("push", repo+":"+tag, "payload.json:"+typeSimpleSigning,
		"--config", "cosign-config.json:application/vnd.oci.image.config.v1+json"))
}
