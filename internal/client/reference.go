// Package client is graft's client side: the verbs that push, attach, discover, pull,
// copy and delete artifact graphs in any OCI registry or OCI image layout directory,
// built on oras-go v2. The commands in cmd/graft parse flags and print; what they do is
// here.
package client

import (
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	"oras.land/oras-go/v2/registry"
)

// LayoutPrefix marks a reference to an OCI image layout directory: oci:DIR[:TAG|@DIGEST].
const LayoutPrefix = "oci:"

// A Reference names a manifest, or a repository when Reference is empty, either in a
// registry (Registry and Repository set) or in an OCI image layout (Layout set).
type Reference struct {
	// Layout is the directory of an OCI image layout; empty for a registry.
	Layout string
	// Registry is the registry's host[:port]; Repository is the repository's name in it.
	Registry, Repository string
	// Reference is a tag or a digest, or empty.
	Reference string
}

// ParseReference parses HOST[:PORT]/REPOSITORY[:TAG|@DIGEST] or oci:DIR[:TAG|@DIGEST].
func ParseReference(s string) (Reference, error) {
	if dir, ok := strings.CutPrefix(s, LayoutPrefix); ok {
		return parseLayoutReference(s, dir)
	}
	ref, err := registry.ParseReference(s)
	if err != nil {
		return Reference{}, &UsageError{Err: fmt.Errorf("invalid reference %q: want HOST/REPOSITORY[:TAG|@DIGEST] or %sDIR[:TAG]: %w", s, LayoutPrefix, err)}
	}
	return Reference{Registry: ref.Registry, Repository: ref.Repository, Reference: ref.Reference}, nil
}

// parseLayoutReference splits DIR[:TAG|@DIGEST]. The tag or digest follows the last
// path separator, so directories whose names hold a colon still parse, as long as a
// tag is given after them.
func parseLayoutReference(s, dir string) (Reference, error) {
	r := Reference{Layout: dir}
	slash := strings.LastIndex(dir, "/")
	if at := strings.Index(dir[slash+1:], "@"); at >= 0 {
		at += slash + 1
		r.Layout, r.Reference = dir[:at], dir[at+1:]
		if _, err := digest.Parse(r.Reference); err != nil {
			return Reference{}, &UsageError{Err: fmt.Errorf("invalid reference %q: %q is not a digest: %w", s, r.Reference, err)}
		}
	} else if colon := strings.LastIndex(dir[slash+1:], ":"); colon >= 0 {
		colon += slash + 1
		r.Layout, r.Reference = dir[:colon], dir[colon+1:]
		if err := (registry.Reference{Reference: r.Reference}).ValidateReferenceAsTag(); err != nil {
			return Reference{}, &UsageError{Err: fmt.Errorf("invalid reference %q: %q is not a tag: %w", s, r.Reference, err)}
		}
	}
	if r.Layout == "" {
		return Reference{}, &UsageError{Err: fmt.Errorf("invalid reference %q: no directory after %q", s, LayoutPrefix)}
	}
	return r, nil
}

// IsLayout reports whether r names something in an OCI image layout directory.
func (r Reference) IsLayout() bool { return r.Layout != "" }

// Digest returns the digest r names, if it names one.
func (r Reference) Digest() (digest.Digest, bool) {
	d, err := digest.Parse(r.Reference)
	return d, err == nil
}

// Tag returns the tag r names, if it names one.
func (r Reference) Tag() string {
	if _, ok := r.Digest(); ok {
		return ""
	}
	return r.Reference
}

// WithReference returns r naming ref (a tag or digest) in the same repository or layout.
func (r Reference) WithReference(ref string) Reference {
	r.Reference = ref
	return r
}

// Repo returns r without its tag or digest: the repository or layout alone.
func (r Reference) Repo() Reference { return r.WithReference("") }

// String formats r as it is parsed.
func (r Reference) String() string {
	base := r.Registry + "/" + r.Repository
	if r.IsLayout() {
		base = LayoutPrefix + r.Layout
	}
	switch {
	case r.Reference == "":
		return base
	case strings.Contains(r.Reference, ":"):
		return base + "@" + r.Reference
	default:
		return base + ":" + r.Reference
	}
}
