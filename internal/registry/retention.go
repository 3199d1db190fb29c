package registry

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/mod/semver"

	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/reference"
)

// A Decision is what garbage collection does with a tag or a manifest, and the rule
// that decides it: the report of a dry run, and of a run.
type Decision struct {
	Repo string `json:"repository"`
	// Tag is the tag decided on; "" for a manifest.
	Tag    string        `json:"tag,omitempty"`
	Digest digest.Digest `json:"digest"`
	Remove bool          `json:"remove"`
	// Policy is the retention policy whose rule decided, or "" for garbage
	// collection's own rules.
	Policy string `json:"policy,omitempty"`
	Rule   string `json:"rule"`
	// Size is a removed manifest's own size.
	Size int64 `json:"size,omitempty"`
}

// The rules a decision names.
const (
	RuleGrace          = "younger than gc.delay"
	RuleLocked         = "locked"
	RuleImmutable      = "immutable-tags"
	RulePulledWithin   = "keep-pulled-within"
	RuleSigned         = "keep-signed"
	RuleKeepTags       = "keep-tags"
	RuleNotNewest      = "keep-tags: not among the newest"
	RuleOlderThan      = "delete-tags-older-than"
	RuleNoRule         = "no rule removes it"
	RuleUntaggedWindow = "delete-untagged-older-than"
	RuleUnreached      = "untagged, and reached by nothing that stays"
	RuleOrphan         = "an artifact of a manifest that is gone"
	RuleFollows        = "an artifact of a manifest that goes"
	RuleTagsGo         = "its tags go"
)

// decideTags decides, under policy p at now, which of the tags of a repository go and
// which stay, with the rule for each. Tags of the referrers tag schema are no tags to a
// policy: they follow their subject, and are left out. info tells, for a manifest the
// tags name, whether it is locked, when it was last pulled and whether it is signed.
// grace keeps the tags set since it, as garbage collection keeps what was pushed
// since.
func (p *RetentionPolicy) decideTags(repo string, now, grace time.Time, tags []metastore.TagInfo,
	info func(digest.Digest) manifestFacts, immutable func(tag string) bool) []Decision {
	var plain []metastore.TagInfo
	for _, t := range tags {
		if _, _, schema := reference.SchemaKey(t.Name); !schema {
			plain = append(plain, t)
		}
	}
	newest := map[string]bool{}
	if len(p.KeepTags) > 0 {
		var matched []metastore.TagInfo
		for _, t := range plain {
			if p.KeepTags.Match(t.Name) {
				matched = append(matched, t)
			}
		}
		slices.SortStableFunc(matched, p.Order.compare)
		for _, t := range matched[:min(p.KeepLast, len(matched))] {
			newest[t.Name] = true
		}
	}
	out := make([]Decision, 0, len(plain))
	for _, t := range plain {
		d := Decision{Repo: repo, Tag: t.Name, Digest: t.Digest, Policy: p.Name}
		facts := info(t.Digest)
		switch {
		case immutable(t.Name):
			d.Rule = RuleImmutable
		case facts.locked:
			d.Rule = RuleLocked
		case !t.Updated.Before(grace):
			d.Rule, d.Policy = RuleGrace, ""
		case p.KeepPulledWithin > 0 && (now.Sub(t.LastPulled) < p.KeepPulledWithin || now.Sub(facts.lastPulled) < p.KeepPulledWithin):
			d.Rule = RulePulledWithin
		case p.KeepSigned && facts.signed:
			d.Rule = RuleSigned
		case newest[t.Name]:
			d.Rule = RuleKeepTags
		case len(p.KeepTags) > 0 && p.KeepTags.Match(t.Name):
			d.Rule, d.Remove = RuleNotNewest, true
		case p.DeleteTagsOlderThan > 0 && now.Sub(t.Updated) > p.DeleteTagsOlderThan:
			d.Rule, d.Remove = RuleOlderThan, true
		default:
			d.Rule = RuleNoRule
		}
		out = append(out, d)
	}
	return out
}

// manifestFacts are what a policy asks of a manifest.
type manifestFacts struct {
	locked     bool
	lastPulled time.Time
	signed     bool
}

// compare ranks a before b when a is newer in order o.
func (o TagOrder) compare(a, b metastore.TagInfo) int {
	if o == BySemver {
		va, vb := version(a.Name), version(b.Name)
		switch {
		case va != "" && vb != "":
			if c := semver.Compare(vb, va); c != 0 {
				return c
			}
		case va != "":
			return -1
		case vb != "":
			return 1
		}
	}
	return cmp.Or(b.Updated.Compare(a.Updated), strings.Compare(a.Name, b.Name))
}

// version is tag as a semantic version with its v ("1.2.3" and "v1.2.3" alike), or ""
// when it is none.
func version(tag string) string {
	v := tag
	if !strings.HasPrefix(v, "v") {
		v = "v" + v
	}
	if !semver.IsValid(v) {
		return ""
	}
	return v
}
