// Package reference checks repository names, tags and digests against the grammar of
// the OCI distribution spec.
package reference

import (
	"regexp"

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
