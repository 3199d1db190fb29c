package reference_test

import (
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/reference"
)

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"a", true},
		{"0", true},
		{"alpine", true},
		{"library/alpine", true},
		{"a/b/c/d/e", true},
		{"my.repo", true},
		{"my_repo", true},
		{"my__repo", true},
		{"my-repo", true},
		{"my---repo", true},
		{"a.b_c__d-e--f", true},
		{"a-b/c.d/e_f/g__h", true},
		{"123/456", true},
		{"x/blobs/uploads", true},
		{"manifests/tags", true},

		{"", false},
		{"Alpine", false},
		{"library/Alpine", false},
		{"ALPINE", false},
		{"my___repo", false},
		{"my..repo", false},
		{"my._repo", false},
		{"my_-repo", false},
		{"my-_repo", false},
		{"my-.repo", false},
		{".repo", false},
		{"_repo", false},
		{"-repo", false},
		{"repo.", false},
		{"repo_", false},
		{"repo-", false},
		{"repo__", false},
		{"/repo", false},
		{"repo/", false},
		{"a//b", false},
		{"a/./b", false},
		{"a/../b", false},
		{"..", false},
		{"a/.b", false},
		{"a/b-", false},
		{"a/_catalog", false},
		{"my repo", false},
		{"my:repo", false},
		{"my@repo", false},
		{"répo", false},
		{"repo\n", false},
		{"\nrepo", false},
		{"a/b\x00", false},
		{strings.Repeat("a", 255), true},
		{strings.Repeat("a", 256), false},
		{strings.Repeat("ab/", 84) + "abc", true},   // 255
		{strings.Repeat("ab/", 84) + "abcd", false}, // 256
	}
	for _, tt := range tests {
		if got := reference.ValidName(tt.name); got != tt.want {
			t.Errorf("ValidName(%q) = %t, want %t", tt.name, got, tt.want)
		}
	}
}

func TestValidTag(t *testing.T) {
	tests := []struct {
		tag  string
		want bool
	}{
		{"latest", true},
		{"v1.0.0", true},
		{"1", true},
		{"_", true},
		{"_private", true},
		{"Release-2024_01.02", true},
		{"UPPER", true},
		{"a..b", true},
		{"a--", true},
		{strings.Repeat("a", 128), true},
		{"_" + strings.Repeat(".", 127), true},

		{"", false},
		{".hidden", false},
		{"-dash", false},
		{strings.Repeat("a", 129), false},
		{"v1:0", false},
		{"sha256:abc", false},
		{"a/b", false},
		{"a b", false},
		{"a+b", false},
		{"tag\n", false},
		{"\ntag", false},
		{"tàg", false},
	}
	for _, tt := range tests {
		if got := reference.ValidTag(tt.tag); got != tt.want {
			t.Errorf("ValidTag(%q) = %t, want %t", tt.tag, got, tt.want)
		}
	}
}

func TestParseDigest(t *testing.T) {
	sha256 := digest.SHA256.FromString("hello")
	sha384 := digest.SHA384.FromString("hello")
	sha512 := digest.SHA512.FromString("hello")
	tests := []struct {
		in string
		ok bool
	}{
		{string(sha256), true},
		{string(sha384), true},
		{string(sha512), true},
		{"sha256:" + strings.Repeat("0", 64), true},

		{"", false},
		{"sha256", false},
		{"sha256:", false},
		{":" + sha256.Encoded(), false},
		{sha256.Encoded(), false},
		{"sha256:" + sha256.Encoded()[:63], false},
		{"sha256:" + sha256.Encoded() + "0", false},
		{"sha256:" + sha512.Encoded(), false},
		{"sha512:" + sha256.Encoded(), false},
		{"sha384:" + sha256.Encoded(), false},
		{"sha256:" + strings.ToUpper(sha256.Encoded()), false},
		{"SHA256:" + sha256.Encoded(), false},
		{"sha256:" + strings.Repeat("g", 64), false},
		{"md5:" + strings.Repeat("a", 32), false},
		{"sha1:" + strings.Repeat("a", 40), false},
		{"blake3:" + strings.Repeat("a", 64), false},
		{"sha256+b64u:" + strings.Repeat("a", 43), false},
		{"sha256:" + sha256.Encoded() + "\n", false},
		{" " + string(sha256), false},
		{"sha256::" + sha256.Encoded(), false},
	}
	for _, tt := range tests {
		d, err := reference.ParseDigest(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseDigest(%q) error = %v, want ok = %t", tt.in, err, tt.ok)
			continue
		}
		if tt.ok && string(d) != tt.in {
			t.Errorf("ParseDigest(%q) = %q", tt.in, d)
		}
	}
}

func TestIsDigest(t *testing.T) {
	tests := []struct {
		ref  string
		want bool
	}{
		{string(digest.FromString("x")), true},
		{"sha256:abc", true},
		{"md5:x", true},
		{":", true},
		{"latest", false},
		{"v1.0", false},
		{"", false},
		{strings.Repeat("a", 128), false},
	}
	for _, tt := range tests {
		if got := reference.IsDigest(tt.ref); got != tt.want {
			t.Errorf("IsDigest(%q) = %t, want %t", tt.ref, got, tt.want)
		}
	}
}

// TestTagsAreNotDigests checks that the two kinds of reference never overlap, which
// is what lets IsDigest decide by a single character.
func TestTagsAreNotDigests(t *testing.T) {
	for _, ref := range []string{"latest", "v1.0.0", "_x", string(digest.FromString("x"))} {
		if reference.ValidTag(ref) && reference.IsDigest(ref) {
			t.Errorf("%q is both a valid tag and a digest", ref)
		}
	}
}

// validName is the name grammar of the distribution spec written out by hand:
//
//	[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
func validName(name string) bool {
	if name == "" || len(name) > reference.MaxNameLength {
		return false
	}
	for _, c := range strings.Split(name, "/") {
		if !validComponent(c) {
			return false
		}
	}
	return true
}

func validComponent(c string) bool {
	isAlnum := func(b byte) bool { return 'a' <= b && b <= 'z' || '0' <= b && b <= '9' }
	i := 0
	for {
		start := i
		for i < len(c) && isAlnum(c[i]) {
			i++
		}
		if i == start {
			return false // empty component, or a separator not between alphanumerics
		}
		if i == len(c) {
			return true
		}
		switch {
		case c[i] == '.':
			i++
		case strings.HasPrefix(c[i:], "__"):
			i += 2
		case c[i] == '_':
			i++
		case c[i] == '-':
			for i < len(c) && c[i] == '-' {
				i++
			}
		default:
			return false
		}
	}
}

func TestValidNameReimplementation(t *testing.T) {
	// The reference grammar must itself agree with the table above, or the fuzz
	// target below compares against something wrong.
	for _, name := range []string{"a", "a.b", "a__b", "a---b", "a/b", strings.Repeat("a", 255)} {
		if !validName(name) {
			t.Errorf("validName(%q) = false", name)
		}
	}
	for _, name := range []string{"", "A", "a..b", "a___b", "a/", "/a", "a//b", "a-", "-a", strings.Repeat("a", 256)} {
		if validName(name) {
			t.Errorf("validName(%q) = true", name)
		}
	}
}

func FuzzValidName(f *testing.F) {
	for _, s := range []string{
		"a", "library/alpine", "a.b_c__d-e--f/g", "a___b", "a..b", "a//b", "/a", "a/", "A",
		"a-", "x/blobs/uploads", strings.Repeat("ab/", 84) + "abc", "a\n", "\xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got := reference.ValidName(name)
		if want := validName(name); got != want {
			t.Fatalf("ValidName(%q) = %t, the grammar says %t", name, got, want)
		}
		if !got {
			return
		}
		if strings.Contains(name, "..") || strings.Contains(name, "//") || strings.ToLower(name) != name {
			t.Fatalf("ValidName(%q) = true for a name with '..', '//' or uppercase", name)
		}
		if strings.ContainsAny(name[:1]+name[len(name)-1:], "._-/") {
			t.Fatalf("ValidName(%q) = true for a name that starts or ends with a separator", name)
		}
	})
}

func TestSchemaKey(t *testing.T) {
	sha256 := digest.FromString("subject")
	sha512 := digest.SHA512.FromString("subject")
	hex := sha256.Encoded()
	for _, tc := range []struct {
		tag, key, suffix string
		ok               bool
	}{
		{"sha256-" + hex, "sha256:" + hex, "", true},
		{"sha256-" + hex + ".sig", "sha256:" + hex, "sig", true},
		{"sha256-" + hex + ".att", "sha256:" + hex, "att", true},
		{"sha256-" + hex + ".sbom", "sha256:" + hex, "sbom", true},
		{"sha256-" + hex + ".a.b", "sha256:" + hex, "a.b", true},
		{"sha512-" + sha512.Encoded()[:64], "sha512:" + sha512.Encoded()[:64], "", true},
		{"sha256-" + hex + ".", "", "", false},
		{"sha256-" + hex[:63], "", "", false},
		{"sha256-" + strings.ToUpper(hex), "", "", false},
		{"sha256-" + hex + "0", "", "", false},
		{"sha256-" + hex + "-sig", "", "", false},
		{"md5-" + hex[:32], "", "", false},
		{"sha512-" + sha512.Encoded(), "", "", false}, // longer than a tag holds
		{"latest", "", "", false},
		{"v1.0", "", "", false},
		{"-" + hex, "", "", false},
	} {
		key, suffix, ok := reference.SchemaKey(tc.tag)
		if key != tc.key || suffix != tc.suffix || ok != tc.ok {
			t.Errorf("SchemaKey(%q) = %q, %q, %v; want %q, %q, %v", tc.tag, key, suffix, ok, tc.key, tc.suffix, tc.ok)
		}
	}
	for _, d := range []digest.Digest{sha256, sha512} {
		key, suffix, ok := reference.SchemaKey(reference.SchemaTag(d))
		if !ok || suffix != "" || key != reference.SchemaKeyOf(d) {
			t.Errorf("SchemaKey(SchemaTag(%s)) = %q, %q, %v; want %q", d, key, suffix, ok, reference.SchemaKeyOf(d))
		}
		if !reference.ValidTag(reference.SchemaTag(d)) {
			t.Errorf("SchemaTag(%s) = %q is not a valid tag", d, reference.SchemaTag(d))
		}
	}
	if reference.SchemaKeyOf(sha256) != sha256.String() {
		t.Errorf("SchemaKeyOf(%s) = %q, want the digest", sha256, reference.SchemaKeyOf(sha256))
	}
}
