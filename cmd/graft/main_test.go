package main

import (
	"bytes"
	"encoding/json"
	"runtime"
	"strings"
	"testing"
)

// execute runs the command line args in process and returns stdout.
func execute(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := rootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(new(bytes.Buffer))
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestVersion(t *testing.T) {
	text, err := execute(t, "version")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(text, "graft ") || !strings.Contains(text, runtime.Version()) {
		t.Errorf("graft version printed %q", text)
	}
	if flag, err := execute(t, "--version"); err != nil || flag != text {
		t.Errorf("graft --version printed %q (%v), want what graft version prints, %q", flag, err, text)
	}
	out, err := execute(t, "version", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ Version, Go, OS, Arch string }
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("graft version -o json: %v\n%s", err, out)
	}
	if v.Version != buildVersion() || v.Go != runtime.Version() || v.OS != runtime.GOOS || v.Arch != runtime.GOARCH {
		t.Errorf("graft version -o json: %+v", v)
	}
	if _, err := execute(t, "version", "-o", "yaml"); exitCode(err) != exitUsage {
		t.Errorf("graft version -o yaml: %v, exit code %d, want %d", err, exitCode(err), exitUsage)
	}
}

func TestServeRefusesBadConfig(t *testing.T) {
	_, err := execute(t, "serve", "--log-format", "xml", "--data-dir", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "log.format") {
		t.Errorf("serve --log-format xml: error %v, want one naming log.format", err)
	}
}
