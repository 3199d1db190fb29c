package main

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	cmd := rootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"version"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.HasPrefix(got, "graft ") || !strings.Contains(got, runtime.Version()) {
		t.Errorf("graft version printed %q", got)
	}
}

func TestServeRefusesBadConfig(t *testing.T) {
	cmd := rootCommand()
	cmd.SetOut(new(bytes.Buffer))
	cmd.SetErr(new(bytes.Buffer))
	cmd.SetArgs([]string{"serve", "--log-format", "xml", "--data-dir", t.TempDir()})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "log.format") {
		t.Errorf("serve --log-format xml: error %v, want one naming log.format", err)
	}
}
