package server

import (
	"strconv"
	"testing"
)

// FuzzParseRoute checks that parseRoute never panics, and that a recognized route
// loses nothing of its path: rebuilding the path from the route gives back the input
// (up to the documented equivalences), so no two different paths reach the same
// handler with the same name and reference by accident.
func FuzzParseRoute(f *testing.F) {
	f.Fuzz(func(t *testing.T, path string) {
		checkRoute(t, path)
	})
}

// FuzzContentRange checks that an upload chunk's Content-Range never panics the
// parser, and that what it accepts is a chunk the registry can place: a start of 0 or
// more, a length of 1 or more that agrees with Content-Length, an end that does not
// overflow, and a range that reads back the same when spelled as clients spell it.
func FuzzContentRange(f *testing.F) {
	f.Fuzz(func(t *testing.T, header string, contentLength int64) {
		start, length, err := parseContentRange(header, contentLength)
		if err != nil {
			return
		}
		if header == "" {
			if start != -1 || length != contentLength {
				t.Fatalf("no Content-Range: start %d, length %d", start, length)
			}
			return
		}
		if start < 0 || length < 1 || start > start+length-1 {
			t.Fatalf("Content-Range %q: start %d, length %d", header, start, length)
		}
		if contentLength >= 0 && length != contentLength {
			t.Fatalf("Content-Range %q with Content-Length %d: length %d", header, contentLength, length)
		}
		again := strconv.FormatInt(start, 10) + "-" + strconv.FormatInt(start+length-1, 10)
		if s, l, err := parseContentRange(again, -1); err != nil || s != start || l != length {
			t.Fatalf("Content-Range %q read as %q, which reads back as %d, %d, %v", header, again, s, l, err)
		}
	})
}
