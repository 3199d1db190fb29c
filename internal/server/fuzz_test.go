package server

import "testing"

// FuzzParseRoute checks that parseRoute never panics, and that a recognized route
// loses nothing of its path: rebuilding the path from the route gives back the input
// (up to the documented equivalences), so no two different paths reach the same
// handler with the same name and reference by accident.
func FuzzParseRoute(f *testing.F) {
	f.Fuzz(func(t *testing.T, path string) {
		checkRoute(t, path)
	})
}
