package client

import (
	"errors"
	"testing"
)

func TestParseReference(t *testing.T) {
	const d = "sha256:f06abfa2707d319667aa22fb1bd4f68586e63b51ad414c499ef37de549a34054"
	tests := []struct {
		in   string
		want Reference
	}{
		{"127.0.0.1:5000/demo/app:v1", Reference{Registry: "127.0.0.1:5000", Repository: "demo/app", Reference: "v1"}},
		{"localhost:5000/demo/app@" + d, Reference{Registry: "localhost:5000", Repository: "demo/app", Reference: d}},
		{"ghcr.io/org/team/app", Reference{Registry: "ghcr.io", Repository: "org/team/app"}},
		{"oci:layout", Reference{Layout: "layout"}},
		{"oci:layout:v1", Reference{Layout: "layout", Reference: "v1"}},
		{"oci:/tmp/a:b/layout:v1", Reference{Layout: "/tmp/a:b/layout", Reference: "v1"}},
		{"oci:./out@" + d, Reference{Layout: "./out", Reference: d}},
	}
	for _, tt := range tests {
		got, err := ParseReference(tt.in)
		if err != nil {
			t.Errorf("ParseReference(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseReference(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		if got.String() != tt.in {
			t.Errorf("ParseReference(%q).String() = %q", tt.in, got.String())
		}
	}
}

func TestParseReferenceErrors(t *testing.T) {
	for _, in := range []string{"", "app", "oci:", "oci::v1", "oci:dir@sha256:short", "oci:dir:bad tag", "host/UPPER:v1"} {
		_, err := ParseReference(in)
		var usage *UsageError
		if !errors.As(err, &usage) {
			t.Errorf("ParseReference(%q): %v, want a usage error", in, err)
		}
		if !errors.As(err, new(*UsageError)) {
			t.Errorf("ParseReference(%q): %v, want a usage error", in, err)
		}
	}
}

func TestReferenceTagAndDigest(t *testing.T) {
	r, _ := ParseReference("h/r:v1")
	if r.Tag() != "v1" {
		t.Errorf("Tag() = %q", r.Tag())
	}
	if _, ok := r.Digest(); ok {
		t.Error("a tag is a digest")
	}
	byDigest := r.WithReference("sha256:f06abfa2707d319667aa22fb1bd4f68586e63b51ad414c499ef37de549a34054")
	if byDigest.Tag() != "" || byDigest.String() != "h/r@sha256:f06abfa2707d319667aa22fb1bd4f68586e63b51ad414c499ef37de549a34054" {
		t.Errorf("by digest: %q, tag %q", byDigest, byDigest.Tag())
	}
	if r.Repo().String() != "h/r" {
		t.Errorf("Repo() = %q", r.Repo())
	}
}

func TestParseFile(t *testing.T) {
	tests := []struct {
		in   string
		want File
	}{
		{"sbom.json", File{"sbom.json", DefaultLayerMediaType}},
		{"sbom.json:application/spdx+json", File{"sbom.json", "application/spdx+json"}},
		{"a:b.txt", File{"a:b.txt", DefaultLayerMediaType}},
		{"dir/a:b.txt:text/plain", File{"dir/a:b.txt", "text/plain"}},
	}
	for _, tt := range tests {
		if got := ParseFile(tt.in, DefaultLayerMediaType); got != tt.want {
			t.Errorf("ParseFile(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost:5000": true, "127.0.0.1:5000": true, "127.1.2.3": true, "[::1]:5000": true,
		"ghcr.io": false, "10.0.0.1:5000": false, "localhost.example.com": false,
	} {
		if got := IsLoopback(host); got != want {
			t.Errorf("IsLoopback(%q) = %v", host, got)
		}
	}
}
