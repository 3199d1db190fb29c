package ui

import (
	"fmt"
	"html/template"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/artifact"
	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/reference"
)

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	"bytes":       humanBytes,
	"short":       func(d any) string { return shortDigest(fmt.Sprint(d)) },
	"ago":         ago,
	"iso":         func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"join":        strings.Join,
	"platform":    platformString,
	"kindName":    kindName,
	"repoURL":     repoURL,
	"manifestURL": func(repo string, ref any) string { return manifestURL(repo, fmt.Sprint(ref)) },
	"tagURL":      func(repo, tag string) string { return Prefix + repo + ":" + tag },
	"lockState":   lockState,
	"isLocked":    locked,
	"title":       func(d map[string]string) string { return d[ocispec.AnnotationTitle] },
	"plural": func(n int, one, many string) string {
		if n == 1 {
			return one
		}
		return many
	},
	"add":        func(a, b int) int { return a + b },
	"shortTag":   shortTag,
	"tagSubject": tagSubject,
	"int":        func(n int64) int { return int(n) },
	"kindOf":     func(s string) artifact.Kind { return artifact.Kind(s) },
	"rows": func(repo string, rows []previewRow) any {
		return struct {
			Repo string
			Rows []previewRow
		}{repo, rows}
	},
}

func repoURL(name string) string { return Prefix + name }

// manifestURL is the page of manifest ref (a tag or digest) of repo.
func manifestURL(repo, ref string) string {
	if reference.IsDigest(ref) {
		return Prefix + repo + "@" + ref
	}
	return Prefix + repo + ":" + ref
}

// withQuery is u with the query q, whose empty values are left out.
func withQuery(u string, q url.Values) string {
	for k, v := range q {
		if len(v) == 0 || v[0] == "" {
			delete(q, k)
		}
	}
	if len(q) == 0 {
		return u
	}
	return u + "?" + q.Encode()
}

// shortDigest is a digest's algorithm and its first 12 hex digits: what people
// compare at a glance.
func shortDigest(d string) string {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) <= 12 {
		return d
	}
	return alg + ":" + hex[:12]
}

// tagSchemaTag matches the tags of the referrers tag schema: an algorithm, a digest's
// hex, and a suffix.
var tagSchemaTag = regexp.MustCompile(`^(sha256|sha384|sha512)-([0-9a-f]{32,128})(\..*)?$`)

// shortTag is tag as the view shows it where room is short: a tag-schema tag with its
// hex cut to 12 digits, any other long tag cut in the middle.
func shortTag(tag string) string {
	if m := tagSchemaTag.FindStringSubmatch(tag); m != nil {
		return m[1] + "-" + m[2][:12] + "…" + m[3]
	}
	if r := []rune(tag); len(r) > 40 {
		return string(r[:24]) + "…" + string(r[len(r)-12:])
	}
	return tag
}

// tagSubject is the digest a tag of the referrers tag schema names, or "".
func tagSubject(tag string) string {
	if m := tagSchemaTag.FindStringSubmatch(tag); m != nil {
		return m[1] + ":" + m[2]
	}
	return ""
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// ago says how long ago t was, roughly.
func ago(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return plural(int(d/time.Minute), "minute") + " ago"
	case d < 48*time.Hour:
		return plural(int(d/time.Hour), "hour") + " ago"
	case d < 60*24*time.Hour:
		return plural(int(d/(24*time.Hour)), "day") + " ago"
	}
	return t.UTC().Format("2 Jan 2006")
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

func platformString(p *ocispec.Platform) string {
	if p == nil {
		return ""
	}
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	if p.OSVersion != "" {
		s += " " + p.OSVersion
	}
	return s
}

// kindName is how the view names a kind, for n of them.
func kindName(k artifact.Kind, n int) string {
	name := map[artifact.Kind]string{
		artifact.Image: "image", artifact.Index: "index", artifact.Signature: "signature",
		artifact.Attestation: "attestation", artifact.SBOM: "SBOM", artifact.Artifact: "artifact",
	}[k]
	if name == "" {
		name = string(k)
	}
	if n == 1 {
		return name
	}
	if k == artifact.Index {
		return "indexes"
	}
	return name + "s"
}

// lockState says which of a's changeable attributes are off, or "" when none is.
func lockState(a metastore.Attributes) string {
	var off []string
	if !a.WriteEnabled {
		off = append(off, "writes")
	}
	if !a.DeleteEnabled {
		off = append(off, "deletes")
	}
	if !a.ReadEnabled {
		off = append(off, "reads")
	}
	if !a.ListEnabled {
		off = append(off, "listing")
	}
	if len(off) == 0 {
		return ""
	}
	return "locked against " + strings.Join(off, ", ")
}

// locked reports whether a forbids deletes, which is what lock sets.
func locked(a metastore.Attributes) bool { return !a.WriteEnabled || !a.DeleteEnabled }

// keyValue is an entry of a sorted map.
type keyValue struct{ Key, Value string }

func sortedMap(m map[string]string) []keyValue {
	out := make([]keyValue, 0, len(m))
	for k, v := range m {
		out = append(out, keyValue{k, v})
	}
	slices.SortFunc(out, func(a, b keyValue) int { return strings.Compare(a.Key, b.Key) })
	return out
}
