package config_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/graft-registry/graft/internal/config"
)

// clearEnv unsets every GRAFT_* variable for the test, so that the environment the
// tests run in cannot change what they see.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "GRAFT_") {
			t.Setenv(k, "") // restores the variable when the test ends
			os.Unsetenv(k)
		}
	}
}

func newFlags(t *testing.T) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("graft", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	config.AddFlags(fs)
	return fs
}

func parseFlags(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	fs := newFlags(t)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parsing %q: %v", args, err)
	}
	return fs
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "graft.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func load(t *testing.T, fs *pflag.FlagSet) *config.Config {
	t.Helper()
	c, err := config.Load(fs)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

// flatten is c as the YAML file spells it: dotted keys to values, which lets the tests
// reach every setting by its key without knowing the struct.
func flatten(t *testing.T, c *config.Config) map[string]string {
	t.Helper()
	b, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var tree map[string]any
	if err := yaml.Unmarshal(b, &tree); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok {
				walk(prefix+k+".", sub)
				continue
			}
			out[prefix+k] = fmt.Sprint(v)
		}
	}
	walk("", tree)
	return out
}

// setting is one configuration value, as the user reaches it.
type setting struct {
	key, flag, env, typ, def string
}

// settings lists what AddFlags registers, each matched to its key in the file and its
// variable.
func settings(t *testing.T) []setting {
	t.Helper()
	def := config.Default()
	keys := flatten(t, &def)
	byFlag := map[string]string{}
	for k := range keys {
		byFlag[strings.ReplaceAll(k, ".", "-")] = k
	}
	var out []setting
	newFlags(t).VisitAll(func(f *pflag.Flag) {
		if f.Name == "config" {
			return
		}
		key, ok := byFlag[f.Name]
		if !ok {
			t.Errorf("flag --%s has no key in the configuration file", f.Name)
			return
		}
		delete(byFlag, f.Name)
		out = append(out, setting{
			key:  key,
			flag: f.Name,
			env:  "GRAFT_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_")),
			typ:  f.Value.Type(),
			def:  keys[key],
		})
	})
	for _, key := range byFlag {
		t.Errorf("key %s has no flag", key)
	}
	if len(out) == 0 {
		t.Fatal("AddFlags registered no settings")
	}
	return out
}

// another returns a valid value of s other than prev, so that each layer in a test
// differs from the one under it.
func (s setting) another(prev string) string {
	var pool []string
	switch {
	case s.typ == "bool":
		pool = []string{"true", "false"}
	case s.typ == "duration":
		pool = []string{"1m0s", "2h0m0s", "3s"}
	case s.key == "storage.s3.part-size", s.key == "limits.manifest-memory":
		pool = []string{"8388608", "16777216"}
	case s.typ == "int":
		pool = []string{"11", "12"}
	case s.key == "trusted-proxies":
		pool = []string{"10.0.0.0/8", "192.0.2.1,2001:db8::/32"}
	case s.key == "gc.orphan-referrers":
		pool = []string{"keep", "delete"}
	case s.key == "log.format":
		pool = []string{"json", "text"}
	case s.key == "log.level":
		pool = []string{"debug", "warn", "error"}
	default:
		pool = []string{"first-" + s.flag, "second-" + s.flag}
	}
	for _, v := range pool {
		if v != prev {
			return v
		}
	}
	panic("no other value for " + s.key)
}

// yamlFor is a configuration file that sets key to value.
func yamlFor(key, value string) string {
	var b strings.Builder
	parts := strings.Split(key, ".")
	for i, p := range parts {
		b.WriteString(strings.Repeat("  ", i) + p + ":")
		if i == len(parts)-1 {
			b.WriteString(" " + value)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestDefault(t *testing.T) {
	c := config.Default()
	if c.Addr != "127.0.0.1:5000" {
		t.Errorf("Addr = %q", c.Addr)
	}
	if c.DataDir != "graft-data" {
		t.Errorf("DataDir = %q", c.DataDir)
	}
	if c.Log.Format != "" || c.Log.Level != "info" {
		t.Errorf("Log = %+v, want format chosen at run time and level info", c.Log)
	}
	if !c.Delete.Cascade {
		t.Error("Delete.Cascade = false, want cascading deletes by default")
	}
	if c.Uploads.TTL != 24*time.Hour {
		t.Errorf("Uploads.TTL = %v", c.Uploads.TTL)
	}
	if c.Shutdown.Timeout != 30*time.Second {
		t.Errorf("Shutdown.Timeout = %v", c.Shutdown.Timeout)
	}
}

func TestLoadNothingSet(t *testing.T) {
	clearEnv(t)
	got := load(t, parseFlags(t))
	want := config.Default()
	if *got != want {
		t.Errorf("Load with nothing set = %+v, want the defaults %+v", *got, want)
	}
}

func TestFlagsShowDefaultsAndVariables(t *testing.T) {
	fs := newFlags(t)
	for _, s := range settings(t) {
		f := fs.Lookup(s.flag)
		if f.DefValue != s.def {
			t.Errorf("--%s defaults to %q, the configuration to %q", s.flag, f.DefValue, s.def)
		}
		if !strings.Contains(f.Usage, s.env) {
			t.Errorf("--%s usage %q does not name %s", s.flag, f.Usage, s.env)
		}
	}
	if fs.Lookup("config") == nil {
		t.Error("no --config flag")
	}
}

// TestSomeFlags registers the flags of some settings: those only, and the others are
// still set by the file and the variables.
func TestSomeFlags(t *testing.T) {
	clearEnv(t)
	fs := pflag.NewFlagSet("graft", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	config.AddFlags(fs, "data-dir", "metadata", "auth.htpasswd")
	var names []string
	fs.VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
	want := []string{"auth-htpasswd", "config", "data-dir", "metadata-postgres-max-conns", "metadata-postgres-timeout", "metadata-postgres-url"}
	if !slices.Equal(names, want) {
		t.Errorf("flags %q, want %q", names, want)
	}
	if err := fs.Parse([]string{"--htpasswd", "users", "--data-dir", "d", "--config", writeFile(t, "gc:\n  delay: 5m\n")}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GRAFT_STORAGE_S3_BUCKET", "b")
	got := load(t, fs)
	if got.Auth.Htpasswd != "users" || got.DataDir != "d" || got.GC.Delay != 5*time.Minute || got.Storage.S3.Bucket != "b" {
		t.Errorf("loaded %+v: want the flags, the file's gc.delay and the variable's bucket", got)
	}
	if err := fs.Parse([]string{"--addr", "x"}); err == nil {
		t.Error("--addr parsed, not registered")
	}
}

// TestPrecedence sets every setting in every combination of file, variable and flag,
// and checks that the highest layer wins and nothing else changes.
func TestPrecedence(t *testing.T) {
	layers := [][]string{
		{"file"}, {"env"}, {"flag"},
		{"file", "env"}, {"file", "flag"}, {"env", "flag"},
		{"file", "env", "flag"},
	}
	def := config.Default()
	defaults := flatten(t, &def)
	for _, s := range settings(t) {
		for _, set := range layers {
			t.Run(s.key+"/"+strings.Join(set, "+"), func(t *testing.T) {
				clearEnv(t)
				value := s.def
				var args []string
				for _, layer := range set {
					value = s.another(value)
					switch layer {
					case "file":
						args = append(args, "--config="+writeFile(t, yamlFor(s.key, value)))
					case "env":
						t.Setenv(s.env, value)
					case "flag":
						args = append(args, "--"+s.flag+"="+value)
					}
				}
				got := flatten(t, load(t, parseFlags(t, args...)))
				if got[s.key] != value {
					t.Errorf("%s = %q, want %q from the %s", s.key, got[s.key], value, set[len(set)-1])
				}
				for k, v := range defaults {
					if k != s.key && got[k] != v {
						t.Errorf("setting %s changed %s to %q, want the default %q", s.key, k, got[k], v)
					}
				}
			})
		}
	}
}

func TestConfigFileFromVariable(t *testing.T) {
	clearEnv(t)
	t.Setenv("GRAFT_CONFIG", writeFile(t, "addr: 0.0.0.0:6000\nlog:\n  level: debug\n"))
	c := load(t, parseFlags(t))
	if c.Addr != "0.0.0.0:6000" || c.Log.Level != "debug" {
		t.Errorf("GRAFT_CONFIG file not read: %+v", *c)
	}

	// --config names the file when both are given.
	c = load(t, parseFlags(t, "--config", writeFile(t, "addr: 0.0.0.0:7000\n")))
	if c.Addr != "0.0.0.0:7000" || c.Log.Level != "info" {
		t.Errorf("--config did not replace GRAFT_CONFIG: %+v", *c)
	}
}

func TestFullFile(t *testing.T) {
	clearEnv(t)
	file := `
addr: ":443"
data-dir: /srv/graft
log:
  format: json
  level: warn
delete:
  cascade: false
uploads:
  ttl: 90m
shutdown:
  timeout: 5s
`
	got := load(t, parseFlags(t, "--config", writeFile(t, file)))
	want := config.Default()
	want.Addr = ":443"
	want.DataDir = "/srv/graft"
	want.Log.Format = "json"
	want.Log.Level = "warn"
	want.Delete.Cascade = false
	want.Uploads.TTL = 90 * time.Minute
	want.Shutdown.Timeout = 5 * time.Second
	if *got != want {
		t.Errorf("Load = %+v, want %+v", *got, want)
	}
}

func TestEmptyFile(t *testing.T) {
	for _, content := range []string{"", "\n", "# no settings yet\n", "---\n"} {
		clearEnv(t)
		c, err := config.Load(parseFlags(t, "--config", writeFile(t, content)))
		if err != nil {
			t.Errorf("Load(%q): %v", content, err)
			continue
		}
		if *c != config.Default() {
			t.Errorf("Load(%q) = %+v, want the defaults", content, *c)
		}
	}
}

func TestMissingFile(t *testing.T) {
	clearEnv(t)
	path := filepath.Join(t.TempDir(), "absent.yaml")
	_, err := config.Load(parseFlags(t, "--config", path))
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Load with a missing file: %v, want an error naming %s", err, path)
	}
}

func TestUnknownKeys(t *testing.T) {
	tests := []struct{ file, key string }{
		{"bogus: 1\n", "bogus"},
		{"log:\n  colour: red\n", "colour"},
		{"data_dir: /srv\n", "data_dir"},
		{"uploads:\n  TTL: 1h\n", "TTL"},
		{"addr: :5000\nlisten: :6000\n", "listen"},
	}
	for _, tt := range tests {
		clearEnv(t)
		path := writeFile(t, tt.file)
		_, err := config.Load(parseFlags(t, "--config", path))
		if err == nil || !strings.Contains(strings.ReplaceAll(err.Error(), path, ""), tt.key) {
			t.Errorf("Load(%q) = %v, want an error naming %q", tt.file, err, tt.key)
		}
	}
}

// TestInvalidValues checks that every way of giving a bad value is refused with an
// error that tells the user which setting to fix.
func TestInvalidValues(t *testing.T) {
	tests := []struct {
		name  string
		file  string
		env   map[string]string
		args  []string
		names []string // the error must contain one of these
	}{
		{name: "file duration", file: "uploads:\n  ttl: soon\n", names: []string{"uploads.ttl", "ttl"}},
		{name: "file duration without unit", file: "shutdown:\n  timeout: 30\n", names: []string{"shutdown.timeout", "timeout"}},
		{name: "file bool", file: "delete:\n  cascade: maybe\n", names: []string{"delete.cascade", "cascade"}},
		{name: "file log format", file: "log:\n  format: xml\n", names: []string{"log.format"}},
		{name: "file log level", file: "log:\n  level: loud\n", names: []string{"log.level"}},
		{name: "file zero ttl", file: "uploads:\n  ttl: 0s\n", names: []string{"uploads.ttl"}},
		{name: "file negative ttl", file: "uploads:\n  ttl: -1h\n", names: []string{"uploads.ttl"}},
		{name: "file empty data dir", file: "data-dir: \"\"\n", names: []string{"data-dir"}},
		{name: "file trusted proxy", file: "trusted-proxies: [10.0.0.0/8, proxy.example]\n", names: []string{"trusted-proxies"}},
		{name: "env trusted proxy", env: map[string]string{"GRAFT_TRUSTED_PROXIES": "10.0.0.0/33"}, names: []string{"trusted-proxies"}},
		{name: "file zero body min bytes", file: "limits:\n  body-min-bytes: 0\n", names: []string{"limits.body-min-bytes"}},
		{name: "file small manifest memory", file: "limits:\n  manifest-memory: 1048576\n", names: []string{"limits.manifest-memory"}},
		{name: "file negative body window", file: "limits:\n  body-window: -1s\n", names: []string{"limits.body-window"}},

		{name: "env duration", env: map[string]string{"GRAFT_UPLOADS_TTL": "soon"}, names: []string{"GRAFT_UPLOADS_TTL"}},
		{name: "env duration without unit", env: map[string]string{"GRAFT_SHUTDOWN_TIMEOUT": "30"}, names: []string{"GRAFT_SHUTDOWN_TIMEOUT"}},
		{name: "env bool", env: map[string]string{"GRAFT_DELETE_CASCADE": "maybe"}, names: []string{"GRAFT_DELETE_CASCADE"}},
		{name: "env log format", env: map[string]string{"GRAFT_LOG_FORMAT": "xml"}, names: []string{"log.format", "GRAFT_LOG_FORMAT"}},
		{name: "env log level", env: map[string]string{"GRAFT_LOG_LEVEL": "loud"}, names: []string{"log.level", "GRAFT_LOG_LEVEL"}},
		{name: "env zero ttl", env: map[string]string{"GRAFT_UPLOADS_TTL": "0s"}, names: []string{"uploads.ttl", "GRAFT_UPLOADS_TTL"}},
		{name: "env negative ttl", env: map[string]string{"GRAFT_UPLOADS_TTL": "-5m"}, names: []string{"uploads.ttl", "GRAFT_UPLOADS_TTL"}},

		{name: "flag log format", args: []string{"--log-format=xml"}, names: []string{"log.format", "log-format"}},
		{name: "flag log level", args: []string{"--log-level=loud"}, names: []string{"log.level", "log-level"}},
		{name: "flag zero ttl", args: []string{"--uploads-ttl=0s"}, names: []string{"uploads.ttl", "uploads-ttl"}},
		{name: "flag negative ttl", args: []string{"--uploads-ttl=-1m"}, names: []string{"uploads.ttl", "uploads-ttl"}},
		{name: "flag empty data dir", args: []string{"--data-dir="}, names: []string{"data-dir"}},

		// A valid flag does not excuse a bad value below it: every layer is parsed.
		{name: "bad variable under a flag", env: map[string]string{"GRAFT_UPLOADS_TTL": "soon"}, args: []string{"--uploads-ttl=1h"}, names: []string{"GRAFT_UPLOADS_TTL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			args := tt.args
			path := ""
			if tt.file != "" {
				path = writeFile(t, tt.file)
				args = append(slices.Clone(args), "--config="+path)
			}
			c, err := config.Load(parseFlags(t, args...))
			if err == nil {
				t.Fatalf("Load accepted %+v", *c)
			}
			// The file's path holds the test's name, which must not count as naming
			// the setting.
			msg := err.Error()
			if path != "" {
				msg = strings.ReplaceAll(msg, path, "")
			}
			if !slices.ContainsFunc(tt.names, func(n string) bool { return strings.Contains(msg, n) }) {
				t.Errorf("Load error %q names none of %q", err, tt.names)
			}
		})
	}
}

// TestInvalidFlagValues covers values the flag parser refuses before Load runs.
func TestInvalidFlagValues(t *testing.T) {
	for _, s := range settings(t) {
		var bad string
		switch s.typ {
		case "bool":
			bad = "maybe"
		case "duration":
			bad = "soon"
		case "int":
			bad = "many"
		default:
			continue
		}
		err := newFlags(t).Parse([]string{"--" + s.flag + "=" + bad})
		if err == nil || !strings.Contains(err.Error(), s.flag) {
			t.Errorf("--%s=%s: %v, want an error naming the flag", s.flag, bad, err)
		}
	}
}

// TestCamelCaseKeys: the file accepts the camel case spelling users know from other
// tools' files for every kebab case key.
func TestCamelCaseKeys(t *testing.T) {
	clearEnv(t)
	path := writeFile(t, "storage:\n  s3:\n    forcePathStyle: true\n    partSize: 8388608\nmetadata:\n  postgres:\n    maxConns: 7\ngc:\n  orphanReferrers: keep\n")
	c := load(t, parseFlags(t, "--config="+path))
	if !c.Storage.S3.ForcePathStyle || c.Storage.S3.PartSize != 8<<20 || c.Metadata.Postgres.MaxConns != 7 || c.GC.OrphanReferrers != "keep" {
		t.Errorf("camel case keys not applied: %+v %+v %+v", c.Storage.S3, c.Metadata.Postgres, c.GC)
	}
}

// TestTrustedProxies: the file gives the proxies as a list or as one string, a flag
// or variable as one string; each entry is a CIDR or an address.
func TestTrustedProxies(t *testing.T) {
	clearEnv(t)
	c := load(t, parseFlags(t, "--config", writeFile(t, "trusted-proxies:\n  - 10.0.0.0/8\n  - 192.0.2.7\n  - \"2001:db8::/32\"\n")))
	if c.TrustedProxies != "10.0.0.0/8,192.0.2.7,2001:db8::/32" {
		t.Errorf("a list in the file: %q", c.TrustedProxies)
	}
	got, err := config.ParsePrefixes(c.TrustedProxies)
	if err != nil || len(got) != 3 || got[1].String() != "192.0.2.7/32" || got[2].String() != "2001:db8::/32" {
		t.Errorf("ParsePrefixes(%q) = %v, %v", c.TrustedProxies, got, err)
	}
	t.Setenv("GRAFT_TRUSTED_PROXIES", "172.16.0.0/12, ::1")
	c = load(t, parseFlags(t))
	if got, err := config.ParsePrefixes(c.TrustedProxies); err != nil || len(got) != 2 || got[1].String() != "::1/128" {
		t.Errorf("GRAFT_TRUSTED_PROXIES: %v, %v", got, err)
	}
	if got, err := config.ParsePrefixes(""); err != nil || len(got) != 0 {
		t.Errorf("no proxies: %v, %v", got, err)
	}
}
