package registry

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/pattern"
)

func TestDecideTags(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	tag := func(name string, age time.Duration) metastore.TagInfo {
		return metastore.TagInfo{Name: name, Digest: digest.FromString(name), Updated: now.Add(-age)}
	}
	pulled := tag("v0.9.0", 30*day)
	pulled.LastPulled = now.Add(-time.Hour)
	tags := []metastore.TagInfo{
		tag("v1.0.0", 20*day), tag("v1.2.0", 19*day), tag("v1.9.0", 18*day), tag("v1.10.0", 30*day),
		tag("2.0.0", 40*day), tag("v2.1.0-rc.1", 2*day),
		pulled, tag("v0.8.0", 30*day), tag("v0.1.0", 90*day), tag("v0.2.0", 90*day),
		tag("latest", 10*day), tag("nightly", time.Hour), tag("old-branch", 10*day), tag("feature", 3*day),
		tag("sha256-"+digest.FromString("x").Encoded()+".sig", 90*day),
	}
	facts := map[string]manifestFacts{
		"v0.8.0": {signed: true},
		"v0.2.0": {locked: true},
	}
	info := func(d digest.Digest) manifestFacts {
		for name, f := range facts {
			if digest.FromString(name) == d {
				return f
			}
		}
		return manifestFacts{}
	}
	immutable := func(tag string) bool { return tag == "v0.1.0" }
	keep, err := pattern.Tags([]string{"v*", "2.*"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		p     RetentionPolicy
		rules map[string]string // tag: rule; removed when prefixed by "-"
	}{
		{"semver", RetentionPolicy{Name: "p", KeepTags: keep, KeepLast: 3, Order: BySemver, DeleteTagsOlderThan: 5 * day,
			KeepPulledWithin: day, KeepSigned: true}, map[string]string{
			// the newest three versions: 2.1.0-rc.1, 2.0.0, 1.10.0
			"v2.1.0-rc.1": RuleKeepTags, "2.0.0": RuleKeepTags, "v1.10.0": RuleKeepTags,
			"v1.9.0": "-" + RuleNotNewest, "v1.2.0": "-" + RuleNotNewest, "v1.0.0": "-" + RuleNotNewest,
			"v0.9.0": RulePulledWithin, "v0.8.0": RuleSigned, "v0.1.0": RuleImmutable, "v0.2.0": RuleLocked,
			"latest": "-" + RuleOlderThan, "old-branch": "-" + RuleOlderThan, "feature": RuleNoRule, "nightly": RuleGrace,
		}},
		{"pushed", RetentionPolicy{Name: "p", KeepTags: keep, KeepLast: 3, Order: ByPush}, map[string]string{
			// the last three set: 2.1.0-rc.1 (2 days), 1.2.0 (19), 1.0.0 (20); v1.9.0 (18) too
			"v2.1.0-rc.1": RuleKeepTags, "v1.9.0": RuleKeepTags, "v1.2.0": RuleKeepTags,
			"v1.0.0": "-" + RuleNotNewest, "v1.10.0": "-" + RuleNotNewest, "2.0.0": "-" + RuleNotNewest,
			"v0.9.0": "-" + RuleNotNewest, "v0.8.0": "-" + RuleNotNewest,
			"v0.1.0": RuleImmutable, "v0.2.0": RuleLocked,
			"latest": RuleNoRule, "old-branch": RuleNoRule, "feature": RuleNoRule, "nightly": RuleGrace,
		}},
		{"age only", RetentionPolicy{Name: "p", DeleteTagsOlderThan: 15 * day}, map[string]string{
			"v1.0.0": "-" + RuleOlderThan, "v1.2.0": "-" + RuleOlderThan, "v1.9.0": "-" + RuleOlderThan,
			"v1.10.0": "-" + RuleOlderThan, "2.0.0": "-" + RuleOlderThan, "v2.1.0-rc.1": RuleNoRule,
			"v0.9.0": "-" + RuleOlderThan, "v0.8.0": "-" + RuleOlderThan, "v0.1.0": RuleImmutable, "v0.2.0": RuleLocked,
			"latest": RuleNoRule, "old-branch": RuleNoRule, "feature": RuleNoRule, "nightly": RuleGrace,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := tc.p.decideTags("r", now, now.Add(-2*time.Hour), tags, info, immutable)
			got := map[string]string{}
			for _, d := range ds {
				rule := d.Rule
				if d.Remove {
					rule = "-" + rule
				}
				got[d.Tag] = rule
				if d.Digest != digest.FromString(d.Tag) || d.Repo != "r" {
					t.Errorf("%s: digest %s, repository %q", d.Tag, d.Digest, d.Repo)
				}
			}
			for name, want := range tc.rules {
				if got[name] != want {
					t.Errorf("%s: %q, want %q", name, got[name], want)
				}
			}
			if len(got) != len(tc.rules) {
				t.Errorf("decided on %d tags, want %d (the tag-schema tag left out): %v", len(got), len(tc.rules), got)
			}
		})
	}
}

func TestTagOrder(t *testing.T) {
	t.Parallel()
	now := time.Now()
	var tags []metastore.TagInfo
	for i, name := range []string{"v1.9.0", "latest", "v1.10.0", "1.10.1", "v1.10.0-rc.1", "v2", "nightly"} {
		tags = append(tags, metastore.TagInfo{Name: name, Updated: now.Add(time.Duration(i) * time.Minute)})
	}
	names := func(ts []metastore.TagInfo) string {
		var s []string
		for _, t := range ts {
			s = append(s, t.Name)
		}
		return fmt.Sprint(s)
	}
	bySemver := slices.Clone(tags)
	slices.SortStableFunc(bySemver, BySemver.compare)
	if got, want := names(bySemver), "[v2 1.10.1 v1.10.0 v1.10.0-rc.1 v1.9.0 nightly latest]"; got != want {
		t.Errorf("semver order %s, want %s", got, want)
	}
	byPush := slices.Clone(tags)
	slices.SortStableFunc(byPush, ByPush.compare)
	if got, want := names(byPush), "[nightly v2 v1.10.0-rc.1 1.10.1 v1.10.0 latest v1.9.0]"; got != want {
		t.Errorf("push order %s, want %s", got, want)
	}
}
