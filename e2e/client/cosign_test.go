package client

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/graft-registry/graft/internal/clienttest"
	"github.com/graft-registry/graft/internal/graftest"
)

// cosignEnv keeps the pinned cosign offline: an empty password for the test's key
// pair, and no TUF root to reach (signing skips the transparency log, verifying the
// check against it).
var cosignEnv = []string{"COSIGN_PASSWORD=", "COSIGN_EXPERIMENTAL=1", "TUF_MIRROR=http://127.0.0.1:1"}

// cosignLoopback lets cosign talk plain HTTP to the tests' loopback registries.
var cosignLoopback = []string{"--allow-insecure-registry", "--allow-http-registry"}

// cosign runs the pinned cosign in g's working directory and returns its combined
// output.
func (g *graft) cosign(args ...string) (string, error) {
	g.t.Helper()
	cmd := g.tool("cosign", args...)
	cmd.Env = append(cmd.Env, cosignEnv...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (g *graft) mustCosign(args ...string) string {
	g.t.Helper()
	out, err := g.cosign(args...)
	if err != nil {
		g.t.Fatalf("cosign %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// The cosign commands the tests run, each against a reference by digest. The key pair
// is cosign.key and cosign.pub in the working directory.
func (g *graft) cosignSign(ref string, flags ...string) {
	g.t.Helper()
	g.mustCosign(slices.Concat([]string{"sign", "-y", "--key", "cosign.key", "--tlog-upload=false"}, flags, cosignLoopback, []string{ref})...)
}

func (g *graft) cosignVerify(ref string, flags ...string) (string, error) {
	g.t.Helper()
	return g.cosign(slices.Concat([]string{"verify", "--key", "cosign.pub", "--insecure-ignore-tlog=true"}, flags, cosignLoopback, []string{ref})...)
}

// child returns the artifact of n that the tag tag names, failing the test without one.
func (n graphNode) child(t *testing.T, tag string) graphNode {
	t.Helper()
	for _, r := range n.Referrers {
		if r.Tag == tag {
			return r
		}
	}
	t.Fatalf("%s has no artifact tagged %s:\n%s", n.Digest, tag, n.shape())
	return graphNode{}
}

// TestCosignTagSchema signs, attests and attaches an SBOM with cosign in its default
// mode, which tags them sha256-<hex>.sig, .att and .sbom without a subject, and signs
// the SBOM too; graft discover shows all of it, graft copy -r carries it to graft and
// to CNCF distribution, where cosign verifies it, and graft delete removes it there,
// tags included, leaving the rest of the repository alone.
func TestCosignTagSchema(t *testing.T) {
	t.Parallel()
	source := graftest.Start(t).Addr
	g := newGraft(t)
	image := source + "/signed/app"
	d := digestOf(t, strings.TrimSpace(g.Must("copy", buildImage(t, g, "layout"), image+":v1")))
	g.mustCosign("generate-key-pair")
	g.cosignSign(image + "@" + d)
	g.WriteFile("predicate.json", `{"builder":"graft e2e"}`)
	g.mustCosign(slices.Concat([]string{"attest", "-y", "--key", "cosign.key", "--tlog-upload=false", "--type", "custom",
		"--predicate", "predicate.json"}, cosignLoopback, []string{image + "@" + d})...)
	g.WriteFile("sbom.spdx.json", `{"spdxVersion":"SPDX-2.3","name":"app"}`)
	g.mustCosign(slices.Concat([]string{"attach", "sbom", "--sbom", "sbom.spdx.json", "--type", "spdx", "--input-format", "json"},
		cosignLoopback, []string{image + "@" + d})...)
	sbom := g.discover(image+"@"+d).child(t, schemaTag(d)+".sbom").Digest
	g.cosignSign(image + "@" + sbom)

	graph := g.discover(image + ":v1")
	for _, want := range []struct{ suffix, artifactType string }{
		{".sig", typeSimpleSigning},
		{".att", "application/vnd.dsse.envelope.v1+json"},
		{".sbom", "text/spdx+json"},
	} {
		if a := graph.child(t, schemaTag(d)+want.suffix); a.Edge != "tag" || a.ArtifactType != want.artifactType {
			t.Errorf("%s: edge %q, type %q; want tag, %s", want.suffix, a.Edge, a.ArtifactType, want.artifactType)
		}
	}
	if n := len(graph.Referrers); n != 3 {
		t.Errorf("the image has %d artifacts, want 3:\n%s", n, graph.shape())
	}
	// the signature of the SBOM, by tag under an artifact found by tag
	graph.child(t, schemaTag(d)+".sbom").child(t, schemaTag(sbom)+".sig")
	tree := g.Must("discover", image+":v1")
	if !strings.Contains(tree, "(tag "+schemaTag(d)+".sig)") {
		t.Errorf("the tree does not mark the signature:\n%s", tree)
	}
	want := graph.shape()

	for _, dst := range []struct{ name, addr string }{
		{"graft", graftest.Start(t).Addr},
		{"distribution", clienttest.StartDistribution(t, clienttest.DistributionOptions{}).Addr},
	} {
		t.Run(dst.name, func(t *testing.T) {
			t.Parallel()
			g := g.in(t)
			mirror := dst.addr + "/mirror/app"

			// the image alone: nothing for cosign to verify, which the test must see fail
			g.Must("copy", image+":v1", dst.addr+"/bare/app")
			if out, err := g.cosignVerify(dst.addr + "/bare/app@" + d); err == nil {
				t.Fatalf("cosign verify passed on a copy without signatures:\n%s", out)
			}

			g.Must("copy", "-r", image+":v1", mirror)
			if got := g.discover(mirror + ":v1").shape(); got != want {
				t.Errorf("the copy's graph:\n%s\nwant:\n%s", got, want)
			}
			if out, err := g.cosignVerify(mirror + "@" + d); err != nil || !strings.Contains(out, d) {
				t.Errorf("cosign verify of the copy: %v\n%s", err, out)
			}
			if out, err := g.cosign(slices.Concat([]string{"verify-attestation", "--key", "cosign.pub", "--insecure-ignore-tlog=true",
				"--type", "custom"}, cosignLoopback, []string{mirror + "@" + d})...); err != nil {
				t.Errorf("cosign verify-attestation of the copy: %v\n%s", err, out)
			}
			if out, err := g.cosignVerify(mirror + "@" + sbom); err != nil {
				t.Errorf("cosign verify of the copy's SBOM: %v\n%s", err, out)
			}
			if out := g.mustCosign(slices.Concat([]string{"download", "sbom"}, cosignLoopback, []string{mirror + "@" + d})...); !strings.Contains(out, "SPDX-2.3") {
				t.Errorf("cosign download sbom of the copy:\n%s", out)
			}

			// graft delete takes the tag-schema artifacts and their tags with the image;
			// what is no part of its graph stays
			g.WriteFile("other.txt", "another artifact in the repository\n")
			other := strings.TrimSpace(g.Must("push", mirror+":other", "other.txt"))
			copied := g.discover(mirror + ":v1")
			wantDeleted := []string{d}
			var walk func(graphNode)
			walk = func(n graphNode) {
				for _, r := range n.Referrers {
					wantDeleted = append(wantDeleted, r.Digest)
					walk(r)
				}
			}
			walk(copied)
			deleted := strings.Fields(g.Must("delete", "--yes", mirror+":v1"))
			for _, w := range wantDeleted {
				if !slices.Contains(deleted, w) {
					t.Errorf("delete did not report %s: %v", w, deleted)
				}
				g.Fail(3, "manifest", "get", mirror+"@"+w)
			}
			if tags := strings.Fields(g.Must("tag", "list", mirror)); !slices.Equal(tags, []string{"other"}) {
				t.Errorf("tags after the delete: %v, want other alone", tags)
			}
			g.Must("manifest", "get", other)
		})
	}
}

// TestCosignReferrersMode signs with cosign --registry-referrers-mode=oci-1-1, which
// gives the signature a subject and tags nothing: graft discover shows it once, as a
// referrer, and graft copy -r carries it to another graft and to CNCF distribution,
// where cosign verifies it.
func TestCosignReferrersMode(t *testing.T) {
	t.Parallel()
	source := graftest.Start(t).Addr
	g := newGraft(t)
	image := source + "/oci11/app"
	d := digestOf(t, strings.TrimSpace(g.Must("copy", buildImage(t, g, "layout"), image+":v1")))
	g.mustCosign("generate-key-pair")
	g.cosignSign(image+"@"+d, "--registry-referrers-mode=oci-1-1")

	graph := g.discover(image + ":v1")
	if len(graph.Referrers) != 1 || graph.Referrers[0].Edge != "subject" || graph.Referrers[0].Tag != "" ||
		graph.Referrers[0].ArtifactType != "application/vnd.dev.cosign.artifact.sig.v1+json" {
		t.Fatalf("discover after cosign sign in oci-1-1 mode:\n%s\nwant one referrer, the signature", graph.shape())
	}

	for _, dst := range []struct {
		name, addr string
		tags       []string
	}{
		{"graft", graftest.Start(t).Addr, []string{"v1"}},
		// the fallback index for the signature, which is how cosign finds it there
		{"distribution", clienttest.StartDistribution(t, clienttest.DistributionOptions{}).Addr, []string{schemaTag(d), "v1"}},
	} {
		t.Run(dst.name, func(t *testing.T) {
			t.Parallel()
			g := g.in(t)
			mirror := dst.addr + "/mirror/app"
			g.Must("copy", "-r", image+":v1", mirror)
			if got := g.discover(mirror + ":v1").shape(); got != graph.shape() {
				t.Errorf("the copy's graph:\n%s\nwant:\n%s", got, graph.shape())
			}
			if out, err := g.cosignVerify(mirror+"@"+d, "--experimental-oci11=true"); err != nil || !strings.Contains(out, d) {
				t.Errorf("cosign verify of the copy: %v\n%s", err, out)
			}
			if tags := strings.Fields(g.Must("tag", "list", mirror)); !slices.Equal(tags, dst.tags) {
				t.Errorf("the copy's tags: %v, want %v", tags, dst.tags)
			}
		})
	}
}

// TestFallbackIndexOnReferrersAPI writes what notation writes on a registry with the
// referrers API, a signature with a subject and the fallback index sha256-<hex> that
// lists it, and an index that lists an artifact the referrers API does not: discover
// shows the signature once and the other as found by tag; copy -r carries both; delete
// removes them and the index.
func TestFallbackIndexOnReferrersAPI(t *testing.T) {
	t.Parallel()
	source := graftest.Start(t).Addr
	g := newGraft(t)
	image := source + "/notation/app"
	d := digestOf(t, strings.TrimSpace(g.Must("copy", buildImage(t, g, "layout"), image+":v1")))
	g.WriteFile("signature.jws", "a notation signature\n")
	sig := digestOf(t, strings.TrimSpace(g.Must("attach", image+":v1", "signature.jws:application/jose+json",
		"--artifact-type", "application/vnd.cncf.notary.signature")))
	g.WriteFile("listed.txt", "listed by the index alone\n")
	listed := digestOf(t, strings.TrimSpace(g.Must("push", image+":listed", "listed.txt", "--artifact-type", "application/vnd.example.listed")))
	g.Must("tag", "delete", image+":listed")
	index := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` +
		descriptorJSON(t, g, image+"@"+sig) + `,` + descriptorJSON(t, g, image+"@"+listed) + `]}`
	g.WriteFile("index.json", index)
	g.Must("manifest", "put", image+":"+schemaTag(d), "index.json")

	graph := g.discover(image + ":v1")
	if len(graph.Referrers) != 2 {
		t.Fatalf("discover:\n%s\nwant the signature once and the listed artifact", graph.shape())
	}
	for _, a := range graph.Referrers {
		switch a.Digest {
		case sig:
			if a.Edge != "subject" || a.IndexTag != "" {
				t.Errorf("the signature: edge %q, index tag %q; want a referrer", a.Edge, a.IndexTag)
			}
		case listed:
			if a.Edge != "tag" || a.IndexTag != schemaTag(d) || a.ArtifactType != "application/vnd.example.listed" {
				t.Errorf("the listed artifact: edge %q, index tag %q, type %q; want tag, %s", a.Edge, a.IndexTag, a.ArtifactType, schemaTag(d))
			}
		default:
			t.Errorf("unexpected artifact %s", a.Digest)
		}
	}

	dst := graftest.Start(t).Addr + "/mirror/app"
	g.Must("copy", "-r", image+":v1", dst)
	g.Must("manifest", "get", dst+"@"+sig)
	g.Must("manifest", "get", dst+"@"+listed)

	indexDigest := g.manifestDigest(image + ":" + schemaTag(d))
	deleted := strings.Fields(g.Must("delete", "--yes", image+":v1"))
	for _, w := range []string{d, sig, listed, indexDigest} {
		if !slices.Contains(deleted, w) {
			t.Errorf("delete did not report %s: %v", w, deleted)
		}
		g.Fail(3, "manifest", "get", image+"@"+w)
	}
	if tags := strings.TrimSpace(g.Run("", "tag", "list", image).Stdout); tags != "" {
		t.Errorf("tags left after the delete: %s", tags)
	}
}

// descriptorJSON returns the descriptor of the manifest ref names, with its artifact
// type, as an index lists it.
func descriptorJSON(t *testing.T, g *graft, ref string) string {
	t.Helper()
	var out struct {
		Descriptor map[string]any `json:"descriptor"`
		Content    struct {
			ArtifactType string `json:"artifactType"`
		} `json:"content"`
	}
	if err := json.Unmarshal([]byte(g.Must("manifest", "get", "-o", "json", ref)), &out); err != nil {
		t.Fatal(err)
	}
	out.Descriptor["artifactType"] = out.Content.ArtifactType
	b, err := json.Marshal(out.Descriptor)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
