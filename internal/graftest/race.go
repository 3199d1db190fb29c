//go:build race

package graftest

const raceEnabled = true
