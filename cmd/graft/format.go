package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
)

// Output formats the verbs print in.
const (
	formatText = "text"
	formatJSON = "json"
	formatRaw  = "raw"
)

// formatFlag is -o/--format, the one output format flag of every verb that prints
// something scripts read: one of the formats the verb knows, the first by default,
// checked when the command line is parsed.
type formatFlag struct {
	value   string
	formats []string
}

// add registers f on cmd with usage, for formats.
func (f *formatFlag) add(cmd *cobra.Command, usage string, formats ...string) {
	f.formats, f.value = formats, formats[0]
	cmd.Flags().VarP(f, "format", "o", usage)
}

func (f *formatFlag) String() string { return f.value }
func (f *formatFlag) Type() string   { return "format" }

func (f *formatFlag) Set(s string) error {
	if !slices.Contains(f.formats, s) {
		return fmt.Errorf("unknown format %q: want %s", s, wordList(f.formats, "or"))
	}
	f.value = s
	return nil
}

// JSON reports whether the format is JSON.
func (f *formatFlag) JSON() bool { return f.value == formatJSON }

// wordList is words as a sentence says them: "a, b or c" with conj "or".
func wordList(words []string, conj string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " " + conj + " " + words[len(words)-1]
}
