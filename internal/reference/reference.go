// Package reference checks repository names, tags and digests against the grammar of
// the OCI distribution spec.
package reference

import (
	"regexp"
	"strings"

	"github.com/opencontainers/go-digest"

	// Register the algorithms the registry accepts in digests besides sha256.
	_ "crypto/sha512"
)

// MaxNameLength bounds a repository name; clients reject longer host/name pairs anyway.
const MaxNameLength = 255

var (
	nameRe = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagRe  = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// ValidName reports whether name is a repository name of the spec's grammar.
func ValidName(name string) bool {
	return len(name) <= MaxNameLength && nameRe.MatchString(name)
}

// ValidTag reports whether tag is a tag of the spec's grammar.
func ValidTag(tag string) bool {
	return tagRe.MatchString(tag)
}

// ParseDigest parses s as a digest of an algorithm the registry supports (sha256,
// sha384, sha512) whose encoded part has the algorithm's length.
func ParseDigest(s string) (digest.Digest, error) {
	return digest.Parse(s)
}

// IsDigest reports whether ref looks like a digest rather than a tag: tags cannot
// contain a colon.
func IsDigest(ref string) bool {
	for i := 0; i < len(ref); i++ {
		if ref[i] == ':' {
			return true
		}
	}
	return false
}

// The referrers tag schema of the distribution spec names a manifest's artifacts by tag
// where a registry has no referrers API: the tag "<alg>-<ref>" (the algorithm cut to 32
// characters, the encoded digest to 64) names an index of them. Signing tools tag
// artifacts the same way with a suffix: cosign's "sha256-<hex>.sig", ".att" and ".sbom".
const (
	schemaAlgMax = 32
	schemaRefMax = 64
)

// SchemaKey returns the key the tag-schema tag `tag` is named after, as SchemaKeyOf
// gives it for the manifest it names, and the tag's suffix after the first dot ("" for
// a fallback index tag). ok is false when tag is not a tag-schema tag.
func SchemaKey(tag string) (key, suffix string, ok bool) {
	alg, rest, found := strings.Cut(tag, "-")
	if !found || alg == "" || len(alg) > schemaAlgMax || !digest.Algorithm(alg).Available() {
		return "", "", false
	}
	ref, suffix, dotted := strings.Cut(rest, ".")
	if dotted && suffix == "" {
		return "", "", false
	}
	want := min(digest.Algorithm(alg).Size()*2, schemaRefMax)
	if len(ref) != want || !isLowerHex(ref) {
		return "", "", false
	}
	return alg + ":" + ref, suffix, true
}

// SchemaKeyOf returns the key of manifest d in the tag schema: its digest, with the
// encoded part cut to the 64 characters a tag holds (only sha384 and sha512 are longer).
func SchemaKeyOf(d digest.Digest) string {
	enc := d.Encoded()
	if len(enc) > schemaRefMax {
		enc = enc[:schemaRefMax]
	}
	return string(d.Algorithm()) + ":" + enc
}

// SchemaTag returns the fallback index tag of manifest d: "<alg>-<ref>".
func SchemaTag(d digest.Digest) string {
	return strings.Replace(SchemaKeyOf(d), ":", "-", 1)
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
