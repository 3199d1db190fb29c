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
			g.Must("copy", buildImage(t, g, "layout"), image)
			attachGraph(t, g, image)
			g.WriteFile("image.sig", "a signature of the image\n")
			g.WriteFile("provenance.json", `{"_type":"https://in-toto.io/Statement/v1"}`)
			g.Must("attach", image, "image.sig", "--artifact-type", typeSignature)
			g.Must("attach", image, "provenance.json:application/vnd.in-toto+json", "--artifact-type", "application/vnd.in-toto+json",
				"--annotation", "org.example.kind=provenance")

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
