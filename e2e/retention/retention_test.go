package retention

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// The rules the report of graft gc names, as its users read them.
const (
	ruleNotNewest    = "keep-tags: not among the newest"
	ruleKeepTags     = "keep-tags"
	ruleOlderThan    = "delete-tags-older-than"
	ruleLocked       = "locked"
	ruleImmutable    = "immutable-tags"
	ruleSigned       = "keep-signed"
	rulePulledWithin = "keep-pulled-within"
	ruleNoRule       = "no rule removes it"
	ruleTagsGo       = "its tags go"
	ruleFollows      = "an artifact of a manifest that goes"
	ruleUnreached    = "untagged, and reached by nothing that stays"
)

const repo = "team/app"

// immutableReleases makes the release-* tags of the repository immutable: no policy
// removes them.
const immutableReleases = `immutable-tags:
  - repositories: ["team/**"]
    tags: ["release-*"]
`

// pushOrder is the order v1 … v15 are pushed in: not their order as versions, nor as
// strings. The first oldCount are pushed a while before the others.
var pushOrder = []int{4, 11, 2, 7, 13, 1, 9, 3, 15, 6, 12, 5, 10, 8, 14}

const oldCount = 5

// release is one of v1 … v15: an image, the SBOM `oras attach` attached to it, and
// cosign's signatures of it in its default tag mode (tagged sha256-<hex>.sig, no
// subject) and its oci-1-1 mode (a referrer). A signature deleted is "".
type release struct {
	n                           int
	image, sbom, tagSig, ociSig digest.Digest
	// indexed is set when the latest index lists the image: the graph stays when
	// the tag goes.
	indexed bool
}

func (rel *release) tag() string { return fmt.Sprintf("v%d", rel.n) }

func (rel *release) signed() bool { return rel.tagSig != "" || rel.ociSig != "" }

// graph is the image and its artifacts.
func (rel *release) graph() []digest.Digest {
	return slices.DeleteFunc([]digest.Digest{rel.image, rel.sbom, rel.tagSig, rel.ociSig},
		func(d digest.Digest) bool { return d == "" })
}

// tags are the tag of the image and the tag-schema tag of its signature.
func (rel *release) tags() []string {
	out := []string{rel.tag()}
	if rel.tagSig != "" {
		out = append(out, schemaTag(rel.image)+".sig")
	}
	return out
}

// referrers are the artifacts the referrers API lists under the image.
func (rel *release) referrers() []digest.Digest {
	return slices.DeleteFunc([]digest.Digest{rel.sbom, rel.ociSig}, func(d digest.Digest) bool { return d == "" })
}

// fixture is the repository the retention runs collect, and what the test knows of it.
type fixture struct {
	t *testing.T
	r *registry
	s *signer
	// releases are those whose tags are there, gone those a run removed, and
	// untagged those whose tag a run removed but whose graph the latest index keeps.
	releases map[int]*release
	gone     []*release
	untagged []*release
	// others are the other manifests of the repository that are there, with their
	// tag ("" for none).
	others map[digest.Digest]string
	// leftovers are the untagged manifests nothing reaches, and nightly the old index
	// and its platform manifests, each with the rule that removes it.
	leftovers, nightly map[digest.Digest]string
	// oldEnd is a time after the old group's tags were set, and before the young
	// group's.
	oldEnd time.Time
}

// day is the unit of the policies' ages: the runs are made as of days after the
// pushes (graft gc --as-of), so that ages never depend on the machine's speed.
const day = 24 * time.Hour

func TestRetention(t *testing.T) {
	t.Parallel()
	eachDeployment(t, func(t *testing.T, d deployment) { testRetention(t, d.start(t, "")) })
}

// testRetention: a repository with tags v1 … v15, each with an SBOM and a cosign
// signature in both modes, a multi-arch index (and an older one), untagged leftovers
// and a locked tag, collected by `graft gc` under five policies in turn, each run with
// a configuration file of its own: the newest by push, the newest as versions, an age,
// keep-signed, keep-pulled-within. After each run exactly the expected tags, manifests,
// referrers and tag-schema signatures remain, every remaining tag pulls completely,
// the report names the rule that removed or kept each tag, and the dry run just before
// listed exactly what then went.
//
// Ages are never measured against the machine's speed: the runs are made as of a time
// the test chooses (graft gc --as-of) between instants it observed. The age run is
// made 30 days after oldEnd with a rule of 30 days: the old group's tags were set
// before oldEnd, so are older; the young group's after, so are not. The pulled-within
// run is made a day after an instant between the pulls the setup and the checks made
// and the test's own pulls, with a rule of a day.
//
// An immutable tag (release-1, old) is never removed: the age rule would. v4's image is
// also listed by the latest index: when the first run removes its tag, the index keeps
// the image, and with it its SBOM and signatures.
func testRetention(t *testing.T, r *registry) {
	f := &fixture{t: t, r: r, s: newSigner(t, r), releases: map[int]*release{}, others: map[digest.Digest]string{}}
	begin := time.Now()
	f.setup()
	t.Logf("the pushes took %s", time.Since(begin))

	f.collect(run{name: "pushed", policy: `keep-tags: {match: ["v*"], last: 13, order: pushed}`,
		gone: []int{4, 11}, rule: ruleNotNewest, kept: map[int]string{2: ruleLocked}, otherwise: ruleKeepTags,
		goneManifests: f.leftovers})
	f.check("after the run keeping the last 13 pushed")

	f.collect(run{name: "semver", policy: `keep-tags: {match: ["v*"], last: 10, order: semver}`,
		gone: []int{1, 3}, rule: ruleNotNewest, kept: map[int]string{2: ruleLocked}, otherwise: ruleKeepTags})
	f.check("after the run keeping the 10 highest versions")

	f.collect(run{name: "age", policy: "delete-tags-older-than: 720h", asOf: f.oldEnd.Add(30 * day),
		gone: []int{7, 13}, goneTags: []string{"nightly"}, rule: ruleOlderThan,
		kept: map[int]string{2: ruleLocked}, otherwise: ruleNoRule, goneManifests: f.nightly})
	f.check("after the run removing old tags")

	// keep-signed: signatures of either mode count; an SBOM is none.
	f.deleteSignatures(9, false, true) // its tag-mode signature stays
	f.deleteSignatures(6, true, false) // its oci-1-1 signature stays
	for _, n := range []int{5, 12, 15} {
		f.deleteSignatures(n, true, true)
	}
	f.collect(run{name: "signed", policy: "keep-tags: {match: [\"v*\"], last: 3}\n    keep-signed: true",
		gone: []int{5, 12, 15}, rule: ruleNotNewest,
		kept: map[int]string{2: ruleLocked, 9: ruleSigned, 6: ruleSigned, 14: ruleSigned, 8: ruleSigned, 10: ruleSigned}})
	f.check("after the run keeping signed releases")

	// keep-pulled-within: v6 pulled by tag with crane, v9 by digest with oras, after
	// every other pull.
	pulls := f.instant()
	f.s.Must("crane", "pull", "--insecure", "--format", "oci", r.Addr+"/"+repo+":v6", f.s.Path("v6"))
	f.s.Must("oras", "pull", "--plain-http", "-o", f.s.Path("v9"), r.ref(repo, f.releases[9].image))
	r.stop() // each replica writes the pulls it recorded
	f.collect(run{name: "pulled", policy: "keep-tags: {match: [\"v*\"], last: 1}\n    keep-pulled-within: 24h",
		asOf: pulls.Add(day), gone: []int{8, 10}, rule: ruleNotNewest,
		kept: map[int]string{2: ruleLocked, 6: rulePulledWithin, 9: rulePulledWithin}, otherwise: ruleKeepTags})
	r.restart()
	for _, n := range []int{6, 9} {
		m := r.info(t, repo, f.releases[n].image.String())
		if m.LastPulledTime == nil || !m.LastPulledTime.After(pulls) {
			t.Errorf("v%d was pulled after %s: the metadata API says it was last pulled %v", n, pulls, m.LastPulledTime)
		}
	}
	if m := r.info(t, repo, f.releases[14].image.String()); m.LastPulledTime == nil || !m.LastPulledTime.Before(pulls) {
		t.Errorf("v14 was last pulled before %s, by the checks: the metadata API says %v", pulls, m.LastPulledTime)
	}
	f.check("after the run keeping pulled releases")
	if left := slices.Sorted(maps.Keys(f.releases)); !slices.Equal(left, []int{2, 6, 9, 14}) {
		t.Errorf("the releases left are %v, want v2 (locked), v6 and v9 (pulled) and v14 (the newest)", left)
	}
}

// setup pushes the repository: first the old group (an index tagged nightly, an image
// tagged release-1, then the first releases, v2 locked); then, after oldEnd, the
// leftovers, the old group's artifacts and the young group (an index tagged latest,
// the other releases and their artifacts).
func (f *fixture) setup() {
	t, r, s := f.t, f.r, f.s
	f.nightly = f.index("nightly", "old")
	f.others[r.pushImage(t, repo, "release-1", linuxAMD64, "an immutable release").Digest] = "release-1"
	for _, n := range pushOrder[:oldCount] {
		f.push(n)
		if n == 2 {
			r.lock(t, repo, "v2")
		}
	}
	f.oldEnd = f.instant()

	r.pushImage(t, "other/app", "v1", linuxAMD64, "an image of a repository no policy matches")
	leftover := r.pushImage(t, repo, "", linuxAMD64, "an untagged leftover").Digest
	attached := r.pushImage(t, repo, "", linuxAMD64, "an untagged leftover with an SBOM").Digest
	sbom := s.attachSBOM(r.ref(repo, attached), "sbom of a leftover")
	f.leftovers = map[digest.Digest]string{leftover: ruleUnreached, attached: ruleUnreached, sbom: ruleFollows}
	for d := range f.leftovers {
		f.others[d] = ""
	}
	f.releases[4].indexed = true // of the old group, and the first a policy removes
	f.index("latest", "young", f.releases[4].image)
	for _, n := range pushOrder[oldCount:] {
		f.push(n)
	}
	f.sign(pushOrder...)
}

// instant returns a time after everything the registry did so far, and before
// anything it does next: the clock has moved past it before it returns, and the
// stores keep times to the microsecond.
func (f *fixture) instant() time.Time {
	at := time.Now()
	for !time.Now().After(at.Add(time.Millisecond)) {
		time.Sleep(time.Millisecond)
	}
	return at.Add(time.Millisecond / 2)
}

// push pushes the image of release n, tagged.
func (f *fixture) push(n int) {
	rel := &release{n: n}
	rel.image = f.r.pushImage(f.t, repo, rel.tag(), linuxAMD64, "layer of "+rel.tag()).Digest
	f.releases[n] = rel
}

// sign attaches an SBOM to each of releases ns with oras, and signs them with cosign
// in both modes.
func (f *fixture) sign(ns ...int) {
	t, r, s := f.t, f.r, f.s
	var refs, names []string
	for _, n := range ns {
		refs = append(refs, r.ref(repo, f.releases[n].image))
		names = append(names, "sbom of "+f.releases[n].tag())
	}
	for i, d := range s.attachSBOMs(refs, names) {
		f.releases[ns[i]].sbom = d
	}
	s.cosignSign(false, refs...)
	s.cosignSign(true, refs...)
	for _, n := range ns {
		rel := f.releases[n]
		rel.tagSig = r.resolve(t, repo, schemaTag(rel.image)+".sig")
		for _, d := range r.Referrers(t, repo, rel.image) {
			if d.ArtifactType == cosignArtifactSig {
				rel.ociSig = d.Digest
			}
		}
		if rel.ociSig == "" {
			t.Fatalf("cosign sign --registry-referrers-mode=oci-1-1 %s: no signature among the referrers", rel.tag())
		}
	}
}

// index pushes a multi-arch index of two fresh platform images and more (manifests of
// the fixture), tagged tag, and returns the index and the fresh images with the rule
// that removes each once the tag goes.
func (f *fixture) index(tag, content string, more ...digest.Digest) map[digest.Digest]string {
	t, r := f.t, f.r
	amd := r.pushImage(t, repo, "", linuxAMD64, content+" amd64").Digest
	arm := r.pushImage(t, repo, "", linuxARM64, content+" arm64").Digest
	idx := f.s.index(repo, tag, append([]digest.Digest{amd, arm}, more...)...)
	f.others[idx], f.others[amd], f.others[arm] = tag, "", ""
	return map[digest.Digest]string{idx: ruleTagsGo, amd: ruleUnreached, arm: ruleUnreached}
}

// deleteSignatures deletes, with the API, cosign's tag-mode signature of release n,
// its oci-1-1 signature, or both.
func (f *fixture) deleteSignatures(n int, tagMode, oci11 bool) {
	t, r, rel := f.t, f.r, f.releases[n]
	if tagMode {
		r.Want(t, http.StatusAccepted, http.MethodDelete, manifestPath(repo, rel.tagSig.String()), nil)
		rel.tagSig = ""
	}
	if oci11 {
		r.Want(t, http.StatusAccepted, http.MethodDelete, manifestPath(repo, rel.ociSig.String()), nil)
		rel.ociSig = ""
	}
}

// run is one collection under one policy, and what it removes and keeps.
type run struct {
	name string
	// policy is the policy's rules, as YAML.
	policy string
	// asOf, when set, is the time the policy is applied as of (graft gc --as-of).
	asOf time.Time
	// gone are the releases whose tags go, and goneTags other tags that go, all by
	// rule.
	gone     []int
	goneTags []string
	rule     string
	// kept are the rules that keep releases, and otherwise the rule of the other
	// releases that stay.
	kept      map[int]string
	otherwise string
	// goneManifests are the manifests that go besides the releases' graphs, each with
	// the rule that removes it.
	goneManifests map[digest.Digest]string
}

// collect runs `graft gc --dry-run`, then `graft gc`, with no grace period and the
// configuration of run, and checks what they reported; then it forgets what went.
func (f *fixture) collect(rn run) {
	t, r := f.t, f.r
	config := r.gcConfig(t, rn.name, fmt.Sprintf("retention:\n  - name: %s\n    repositories: [\"team/**\"]\n    %s\n%s",
		rn.name, rn.policy, immutableReleases))
	flags := []string{"--gc-delay", "0"}
	if !rn.asOf.IsZero() {
		flags = append(flags, "--as-of", rn.asOf.Format(time.RFC3339Nano))
	}
	start := time.Now()
	dry := r.gc(t, f.s.Tools, config, append(flags, "--dry-run")...)
	rep := r.gc(t, f.s.Tools, config, flags...)
	t.Logf("run %s: the dry run and the run took %s", rn.name, time.Since(start))

	what := "run " + rn.name
	wantSet(t, what+": the tags the dry run listed, and the run removed", dry.Tags, rep.Tags)
	wantSet(t, what+": the manifests the dry run listed, and the run removed", dry.Manifests, rep.Manifests)
	wantSet(t, what+": the links the dry run listed, and the run removed", dry.Links, rep.Links)
	wantSet(t, what+": the blobs the dry run listed, and the run removed", dry.Blobs, rep.Blobs)

	var tags []string
	manifests := maps.Clone(rn.goneManifests)
	if manifests == nil {
		manifests = map[digest.Digest]string{}
	}
	for _, n := range rn.gone {
		rel := f.releases[n]
		tags = append(tags, repo+":"+rel.tag())
		if rel.indexed {
			continue // the index that stays keeps the image, and with it its artifacts
		}
		manifests[rel.image] = ruleTagsGo
		for _, d := range rel.graph()[1:] {
			manifests[d] = ruleFollows
		}
	}
	for _, tag := range rn.goneTags {
		tags = append(tags, repo+":"+tag)
	}
	wantSet(t, what+": the tags removed", rep.Tags, tags)
	wantSet(t, what+": the manifests removed", rep.Manifests, inRepo(repo, slices.Collect(maps.Keys(manifests))...))
	f.wantDecisions(rn, rep, manifests)

	for _, n := range rn.gone {
		if rel := f.releases[n]; rel.indexed {
			f.untagged = append(f.untagged, rel)
		} else {
			f.gone = append(f.gone, rel)
		}
		delete(f.releases, n)
	}
	for d := range manifests {
		delete(f.others, d)
	}
}

// wantDecisions checks that the report gives every tag of the repository the rule
// that removed or kept it, none to a tag-schema tag, and every manifest removed its
// rule.
func (f *fixture) wantDecisions(rn run, rep *gcReport, manifests map[digest.Digest]string) {
	t := f.t
	tags := map[string]decision{}
	removed := map[digest.Digest]decision{}
	for _, d := range rep.Decisions {
		switch {
		case d.Repo != repo:
			t.Errorf("run %s: a decision on %s, which no policy matches: %+v", rn.name, d.Repo, d)
		case d.Tag != "":
			tags[d.Tag] = d
		case d.Remove:
			removed[d.Digest] = d
		}
	}
	want := map[string]decision{}
	for n, rel := range f.releases {
		d := decision{Repo: repo, Tag: rel.tag(), Digest: rel.image, Policy: rn.name, Rule: rn.otherwise}
		switch {
		case slices.Contains(rn.gone, n):
			d.Remove, d.Rule = true, rn.rule
		case rn.kept[n] != "":
			d.Rule = rn.kept[n]
		}
		want[d.Tag] = d
	}
	for dg, tag := range f.others {
		if tag != "" {
			d := decision{Repo: repo, Tag: tag, Digest: dg, Policy: rn.name, Rule: ruleNoRule}
			switch {
			case tag == "release-1":
				d.Rule = ruleImmutable
			case slices.Contains(rn.goneTags, tag):
				d.Remove, d.Rule = true, rn.rule
			}
			want[tag] = d
		}
	}
	for _, tag := range slices.Sorted(maps.Keys(want)) {
		if got := tags[tag]; got != want[tag] {
			t.Errorf("run %s: the decision on %s is %+v, want %+v", rn.name, tag, got, want[tag])
		}
	}
	for tag := range tags {
		if _, ok := want[tag]; !ok {
			t.Errorf("run %s: a decision on tag %s: %+v", rn.name, tag, tags[tag])
		}
	}
	for d, rule := range manifests {
		if got := removed[d]; got.Rule != rule {
			t.Errorf("run %s: the rule that removed %s is %q, want %q", rn.name, d, got.Rule, rule)
		}
	}
}

// check checks that the repository holds exactly the releases and other manifests the
// test expects, as the tags, the metadata API and the referrers API say, that each
// release's image counts its artifacts, and that every tag and referrer pulls
// completely.
func (f *fixture) check(what string) {
	t, r := f.t, f.r
	var tags []string
	var manifests []digest.Digest
	for _, rel := range f.releases {
		tags = append(tags, rel.tags()...)
		manifests = append(manifests, rel.graph()...)
	}
	for _, rel := range f.untagged {
		tags = append(tags, rel.tags()[1:]...) // its signature's
		manifests = append(manifests, rel.graph()...)
	}
	for d, tag := range f.others {
		manifests = append(manifests, d)
		if tag != "" {
			tags = append(tags, tag)
		}
	}
	got := r.Tags(t, repo)
	wantSet(t, what+": the tags of "+repo, got, tags)
	listed := r.manifests(t, repo)
	wantSet(t, what+": the manifests of "+repo+" the metadata API lists", slices.Collect(maps.Keys(listed)), manifests)

	for _, rel := range append(slices.Collect(maps.Values(f.releases)), f.untagged...) {
		m := listed[rel.image]
		sigs := int64(len(rel.graph()) - 2)
		tags := []string{rel.tag()}
		if _, ok := f.releases[rel.n]; !ok {
			tags = nil
		}
		if m.Kind != "image" || !slices.Equal(m.Tags, tags) || m.Signed != rel.signed() ||
			m.Artifacts["sbom"] != 1 || m.Artifacts["signature"] != sigs {
			t.Errorf("%s: the metadata API says of %s %+v; want an image tagged %q with an SBOM and %d signatures",
				what, rel.tag(), m, tags, sigs)
		}
		wantSet(t, what+": the referrers of "+rel.tag(), digestsOf(r.Referrers(t, repo, rel.image)), rel.referrers())
		for _, d := range rel.referrers() {
			r.pullsCompletely(t, repo, d.String())
		}
	}
	for _, rel := range f.gone {
		if refs := r.Referrers(t, repo, rel.image); len(refs) != 0 {
			t.Errorf("%s: the referrers API lists %v under %s, which is gone", what, digestsOf(refs), rel.tag())
		}
	}
	for _, tag := range got {
		r.pullsCompletely(t, repo, tag)
	}
	r.pullsCompletely(t, "other/app", "v1")
	if t.Failed() {
		t.FailNow() // the runs that follow would start from another repository
	}
}

func digestsOf(descs []ocispec.Descriptor) []digest.Digest {
	out := []digest.Digest{}
	for _, d := range descs {
		out = append(out, d.Digest)
	}
	return out
}
