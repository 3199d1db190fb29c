// Package config is graft's configuration: one struct, read from a YAML file and
// overridden by GRAFT_* environment variables and command-line flags, in that order.
//
// Every setting has one key in the file (log.format), one flag (--log-format) and one
// variable (GRAFT_LOG_FORMAT), all derived from the struct's yaml tags.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// Config is graft's configuration.
type Config struct {
	// Addr is the address the registry listens on.
	Addr string `yaml:"addr" usage:"address to listen on"`
	// DataDir holds everything of the embedded deployment: blobs, uploads, database.
	DataDir string `yaml:"data-dir" usage:"directory for all registry state"`
	// TrustedProxies are the addresses (CIDRs) of the reverse proxies whose
	// X-Forwarded-For, -Proto and -Host headers are believed: a list in the file,
	// separated by commas in a flag or variable (ParsePrefixes reads it).
	TrustedProxies string `yaml:"trusted-proxies" config:"list" usage:"CIDRs or addresses of reverse proxies whose X-Forwarded-For, -Proto and -Host headers are believed, separated by commas (default: none)"`
	Log            struct {
		Format string `yaml:"format" usage:"log format: text or json (text on a terminal by default)"`
		Level  string `yaml:"level" usage:"log level: debug, info, warn or error"`
		// Access logs one line per request at info; health probes and metric
		// scrapes at debug.
		Access bool `yaml:"access" usage:"log one line per request at info: client, user, method, path, status, bytes, duration, request id"`
	} `yaml:"log"`
	Delete struct {
		Cascade bool `yaml:"cascade" usage:"deleting a manifest deletes its referrers and the children only it uses"`
	} `yaml:"delete"`
	Uploads struct {
		TTL      time.Duration `yaml:"ttl" usage:"how long an upload session may go unwritten before it is reclaimed"`
		EmptyTTL time.Duration `yaml:"empty-ttl" usage:"how long an upload session that holds no bytes is kept"`
	} `yaml:"uploads"`
	Shutdown struct {
		Timeout time.Duration `yaml:"timeout" usage:"how long shutdown waits for requests in flight"`
	} `yaml:"shutdown"`
	// Storage names where blobs live: the data dir unless an S3 bucket is set.
	Storage struct {
		S3 struct {
			Endpoint       string `yaml:"endpoint" usage:"S3 endpoint URL (empty: AWS)"`
			Region         string `yaml:"region" usage:"S3 region"`
			Bucket         string `yaml:"bucket" usage:"S3 bucket for blobs; setting it stores blobs in S3 instead of the data dir"`
			Prefix         string `yaml:"prefix" usage:"key prefix of everything graft stores in the bucket"`
			ForcePathStyle bool   `yaml:"force-path-style" usage:"address the bucket in the path, not the host name (MinIO, Versity, Ceph)"`
			AccessKey      string `yaml:"access-key" usage:"S3 access key (default: the AWS credential chain)"`
			SecretKey      string `yaml:"secret-key" usage:"S3 secret key (default: the AWS credential chain)"`
			PartSize       int    `yaml:"part-size" usage:"bytes per part of a multipart upload, at least 5 MiB (0: the default)"`
			Redirect       bool   `yaml:"redirect" usage:"answer blob pulls with a redirect to a presigned S3 URL"`
		} `yaml:"s3"`
	} `yaml:"storage"`
	// Metadata names where the facts live: SQLite in the data dir unless a PostgreSQL
	// URL is set.
	Metadata struct {
		Postgres struct {
			URL      string `yaml:"url" usage:"PostgreSQL connection URL; setting it keeps metadata in PostgreSQL instead of the data dir"`
			MaxConns int    `yaml:"max-conns" usage:"most connections to PostgreSQL per replica (0: the driver's default)"`
			// Timeout bounds each round trip to PostgreSQL: past it the database
			// counts as unavailable, and the request is answered 503.
			Timeout time.Duration `yaml:"timeout" usage:"longest wait for PostgreSQL to answer a statement or give a connection; past it the request is answered 503"`
		} `yaml:"postgres"`
	} `yaml:"metadata"`
	GC struct {
		Interval        time.Duration `yaml:"interval" usage:"run garbage collection this often while serving (0: never)"`
		Delay           time.Duration `yaml:"delay" usage:"grace period: blobs and manifests younger than this are never collected"`
		OrphanReferrers string        `yaml:"orphan-referrers" usage:"referrers whose subject is gone: delete or keep"`
	} `yaml:"gc"`
	// Limits bound what one client may hold of the server.
	Limits struct {
		BodyMinBytes int           `yaml:"body-min-bytes" usage:"bytes a request body must deliver in every limits.body-window, or its request is cut off"`
		BodyWindow   time.Duration `yaml:"body-window" usage:"the window of limits.body-min-bytes (0: no minimum body rate)"`
		// ManifestMemory is at least 4 MiB: the largest manifest must fit.
		ManifestMemory int `yaml:"manifest-memory" usage:"bytes of manifest bodies held at once across all requests; past it a manifest PUT waits a moment, then is answered 429"`
		// UploadsPerRepository and UploadsPerCaller bound the upload sessions open at
		// once; 0 is no bound.
		UploadsPerRepository int `yaml:"uploads-per-repository" usage:"upload sessions one repository may have open at once; past it a new one is answered 429 (0: no limit)"`
		UploadsPerCaller     int `yaml:"uploads-per-caller" usage:"upload sessions one caller (a user, a token, an address) may have open at once; past it a new one is answered 429 (0: no limit)"`
	} `yaml:"limits"`
	// Auth is who may do what. With no users, client CA or policies, anyone may do
	// anything, which graft serve allows on a loopback address only.
	Auth Auth `yaml:"auth"`
	// Retention and ImmutableTags are lists, set in the configuration file only,
	// pointers as Auth's lists are.
	Retention     *[]RetentionPolicy `yaml:"retention,omitempty" config:"file"`
	ImmutableTags *[]ImmutableTags   `yaml:"immutable-tags,omitempty" config:"file"`
	// Events are the registry's changes as others follow them: webhooks, and the
	// replication rules.
	Events Events `yaml:"events"`
	// Replication are the rules that copy graphs to other registries as they change,
	// a list set in the configuration file only.
	Replication *[]ReplicationRule `yaml:"replication,omitempty" config:"file"`
	// Mirrors are pull-through mirrors of other registries, a list set in the
	// configuration file only.
	Mirrors *[]Mirror `yaml:"mirrors,omitempty" config:"file"`
	// TLS serves HTTPS instead of plain HTTP.
	TLS TLS `yaml:"tls"`
}

// Auth is the access control of graft serve: users, policies, tokens.
type Auth struct {
	Htpasswd          string        `yaml:"htpasswd" usage:"htpasswd file of users with bcrypt passwords (--htpasswd for short); setting it turns authentication on"`
	InsecureAnonymous bool          `yaml:"insecure-anonymous" usage:"let anyone do anything without credentials on an address other than loopback (--insecure-anonymous for short)"`
	LoginFailures     int           `yaml:"login-failures" usage:"failed logins a source may make per auth.login-window before it is refused for the rest of the window (0: no limit)"`
	LoginWindow       time.Duration `yaml:"login-window" usage:"the window of auth.login-failures"`
	Token             struct {
		Key        string        `yaml:"key" usage:"PEM private key that signs tokens (default: one generated in the data dir); replicas must share it"`
		Realm      string        `yaml:"realm" usage:"token endpoint URL sent to clients (default: /auth/token on the host and scheme they used)"`
		Service    string        `yaml:"service" usage:"service name: the audience and issuer of tokens"`
		TTL        time.Duration `yaml:"ttl" usage:"how long an access token works"`
		RefreshTTL time.Duration `yaml:"refresh-ttl" usage:"how long a refresh token (the identity token docker login keeps) works"`
	} `yaml:"token"`
	// Users, Groups, Admins and Policies are lists, set in the configuration file
	// only. They are pointers so that a Config stays comparable with ==.
	Users    *[]AuthUser          `yaml:"users,omitempty" config:"file"`
	Groups   *map[string][]string `yaml:"groups,omitempty" config:"file"`
	Admins   *[]string            `yaml:"admins,omitempty" config:"file"`
	Policies *[]AuthPolicy        `yaml:"policies,omitempty" config:"file"`
}

// AuthUser is a user of the configuration file.
type AuthUser struct {
	Name string `yaml:"name"`
	// Password is a bcrypt hash (graft user hash), never a password.
	Password string   `yaml:"password"`
	Groups   []string `yaml:"groups"`
}

// AuthPolicy grants actions on the repositories that match its patterns to the users
// (names, group:NAME, or * for every user) it lists.
type AuthPolicy struct {
	Repositories  []string `yaml:"repositories"`
	Pull          []string `yaml:"pull"`
	Push          []string `yaml:"push"`
	Delete        []string `yaml:"delete"`
	AnonymousPull bool     `yaml:"anonymous-pull"`
}

// RetentionPolicy says what garbage collection removes of the repositories it matches,
// beyond what nothing reaches: tags, and with them the graphs only they kept. The first
// policy whose repositories match a repository applies to it.
type RetentionPolicy struct {
	// Name names the policy in reports and metrics; "retention[i]" by default.
	Name         string   `yaml:"name"`
	Repositories []string `yaml:"repositories"`
	KeepTags     *struct {
		// Match are tag patterns; of the tags they match, the Last newest are kept
		// and the others go.
		Match []string `yaml:"match"`
		Last  int      `yaml:"last"`
		// Order is "pushed" (when the tag was set) or "semver" (v1.10.0 after
		// v1.9.0; tags that are no version come last).
		Order string `yaml:"order"`
	} `yaml:"keep-tags"`
	// DeleteTagsOlderThan removes the tags keep-tags does not match once they were set
	// this long ago.
	DeleteTagsOlderThan time.Duration `yaml:"delete-tags-older-than"`
	// DeleteUntaggedOlderThan keeps untagged manifests that no graph reaches for this
	// long (at least gc.delay) before they go.
	DeleteUntaggedOlderThan time.Duration `yaml:"delete-untagged-older-than"`
	// KeepPulledWithin keeps what was pulled this recently, tag or manifest.
	KeepPulledWithin time.Duration `yaml:"keep-pulled-within"`
	// KeepSigned keeps a manifest with a signature under it, and its tags.
	KeepSigned bool `yaml:"keep-signed"`
}

// ImmutableTags are tags that may be neither moved nor deleted: those Tags matches in
// the repositories Repositories matches. Tags of the referrers tag schema
// (sha256-<hex>, sha256-<hex>.sig, …) never are, so that an immutable release can
// still be signed.
type ImmutableTags struct {
	Repositories []string `yaml:"repositories"`
	Tags         []string `yaml:"tags"`
}

// Events are how the registry's changes reach others.
type Events struct {
	Source string        `yaml:"source" usage:"the CloudEvents source of the events webhooks receive: a URI naming this registry (default: graft://<host name>)"`
	Keep   time.Duration `yaml:"keep" usage:"how long an event stays in the outbox once every webhook and replication rule has passed it (default 1h)"`
	// Webhooks receive every change, a list set in the configuration file only.
	Webhooks *[]Webhook `yaml:"webhooks,omitempty" config:"file"`
}

// Webhook is a receiver of the registry's events, POSTed to URL as CloudEvents.
type Webhook struct {
	// Name names it in the outbox, the status and the metrics; its URL by default.
	// Renamed, a webhook starts again from the newest event.
	Name string `yaml:"name"`
	URL  string `yaml:"url"`
	// Repositories are patterns of the repositories whose events it receives; all
	// when empty.
	Repositories []string `yaml:"repositories"`
	// Actions are the changes it receives: push, delete, tag, untag,
	// repository-delete; all when empty.
	Actions []string `yaml:"actions"`
	// Headers are sent with every POST.
	Headers map[string]string `yaml:"headers"`
	// Secret signs every body (X-Graft-Signature-256); SecretFile holds it instead.
	Secret     string `yaml:"secret"`
	SecretFile string `yaml:"secret-file"`
}

// ReplicationRule copies the graphs of the repositories it matches to another
// registry: every push, with its referrers and tag-schema artifacts, and deletes.
type ReplicationRule struct {
	// Name names it in the outbox, the status, the metrics and graft replicate --rule.
	Name string `yaml:"name"`
	// URL is the destination registry, https://registry.example, or http:// for one
	// that serves without TLS.
	URL string `yaml:"url"`
	// Repositories are patterns of the repositories replicated; all when empty.
	Repositories []string `yaml:"repositories"`
	// Prefix is put before a repository's name at the destination.
	Prefix string `yaml:"prefix"`
	// ArtifactTypes, when not empty, are the only artifact types of the referrers and
	// tag-schema artifacts replicated; images and indexes always are.
	ArtifactTypes []string `yaml:"artifact-types"`
	// Delete propagates deletes: manifests with their graphs, tags, repositories.
	Delete bool `yaml:"delete"`
	// Credentials log in to the destination; without them, those the Docker config
	// file of graft serve (DOCKER_CONFIG, ~/.docker/config.json) has for its host.
	Credentials *Credentials `yaml:"credentials"`
}

// Credentials are a user name and the file that holds its password (or token).
type Credentials struct {
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password-file"`
}

// Mirror is a pull-through mirror: the repositories under Prefix are copies of an
// upstream registry's, fetched when first pulled and served from the registry after.
type Mirror struct {
	// Prefix ends in a slash: with "hub/", hub/library/alpine is upstream's
	// library/alpine.
	Prefix string `yaml:"prefix"`
	// Upstream is the registry's URL, https://registry-1.docker.io; http:// is allowed
	// for a loopback address only.
	Upstream string `yaml:"upstream"`
	// Credentials log in to the upstream; without them, those the Docker config file
	// of graft serve (DOCKER_CONFIG, ~/.docker/config.json) has for its host, if any.
	Credentials *Credentials `yaml:"credentials"`
	// TagTTL is how long a tag, and the referrers of a manifest, are served as fetched
	// before upstream is asked again; 1h when unset.
	TagTTL time.Duration `yaml:"tag-ttl"`
}

// TLS is the certificate graft serve serves HTTPS with, and the CA of the client
// certificates it accepts.
type TLS struct {
	Cert     string `yaml:"cert" usage:"PEM certificate (chain) to serve HTTPS with"`
	Key      string `yaml:"key" usage:"PEM private key of tls.cert"`
	ClientCA string `yaml:"client-ca" usage:"PEM CA certificates: a client certificate they signed logs its common name in as a user"`
}

// flagAliases are short flag names, as other registries' commands spell them, for
// settings whose flag is long.
var flagAliases = map[string]string{
	"htpasswd":           "auth-htpasswd",
	"insecure-anonymous": "auth-insecure-anonymous",
}

// Default returns the configuration graft runs with when nothing is set.
func Default() Config {
	var c Config
	c.Addr = "127.0.0.1:5000"
	c.DataDir = "graft-data"
	c.Log.Level = "info"
	c.Log.Access = true
	c.Delete.Cascade = true
	c.Uploads.TTL = 24 * time.Hour
	c.Uploads.EmptyTTL = time.Hour
	c.Shutdown.Timeout = 30 * time.Second
	c.Metadata.Postgres.Timeout = 10 * time.Second
	c.GC.Delay = time.Hour
	c.GC.OrphanReferrers = "delete"
	c.Limits.BodyMinBytes = 16 << 10
	c.Limits.BodyWindow = 30 * time.Second
	c.Limits.ManifestMemory = 64 << 20
	c.Limits.UploadsPerRepository = 1000
	c.Limits.UploadsPerCaller = 500
	c.Auth.LoginFailures = 10
	c.Auth.LoginWindow = time.Minute
	c.Auth.Token.Service = "graft"
	c.Auth.Token.TTL = 5 * time.Minute
	c.Auth.Token.RefreshTTL = 30 * 24 * time.Hour
	return c
}

// setting is one leaf of Config.
type setting struct {
	key   string // log.format
	flag  string // log-format
	env   string // GRAFT_LOG_FORMAT
	usage string
	index []int // field path in Config
	// fileOnly settings are lists and maps: no flag or variable sets them.
	fileOnly bool
	// list settings are strings of comma-separated values that the file may give
	// as a list
	list bool
}

func settings() []setting {
	var out []setting
	var walk func(t reflect.Type, prefix string, index []int)
	walk = func(t reflect.Type, prefix string, index []int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			key := prefix + strings.Split(f.Tag.Get("yaml"), ",")[0]
			idx := append(append([]int{}, index...), i)
			if f.Tag.Get("config") == "file" {
				out = append(out, setting{key: key, index: idx, fileOnly: true})
				continue
			}
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Duration]() {
				walk(f.Type, key+".", idx)
				continue
			}
			flag := strings.ReplaceAll(key, ".", "-")
			out = append(out, setting{
				key:   key,
				flag:  flag,
				env:   "GRAFT_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_")),
				usage: f.Tag.Get("usage"),
				index: idx,
				list:  f.Tag.Get("config") == "list",
			})
		}
	}
	walk(reflect.TypeFor[Config](), "", nil)
	return out
}

// AddFlags adds --config to fs, and a flag for each setting whose key is one of keys or
// lies under one ("storage" is storage.s3.bucket and the rest), or for every setting
// when no keys are given. A command registers the settings it uses, so that its help
// lists those only; the file and the variables set every setting, whatever the flags.
func AddFlags(fs *pflag.FlagSet, keys ...string) {
	def := reflect.ValueOf(Default())
	fs.String("config", "", "YAML configuration file (also GRAFT_CONFIG)")
	normalize := fs.GetNormalizeFunc()
	fs.SetNormalizeFunc(func(f *pflag.FlagSet, name string) pflag.NormalizedName {
		if long, ok := flagAliases[name]; ok {
			name = long
		}
		return normalize(f, name)
	})
	for _, s := range settings() {
		if s.fileOnly || !s.under(keys) {
			continue
		}
		v := def.FieldByIndex(s.index)
		usage := s.usage + " (" + s.env + ")"
		switch v.Interface().(type) {
		case string:
			fs.String(s.flag, v.String(), usage)
		case bool:
			fs.Bool(s.flag, v.Bool(), usage)
		case int:
			fs.Int(s.flag, int(v.Int()), usage)
		case time.Duration:
			fs.Duration(s.flag, time.Duration(v.Int()), usage)
		default:
			panic("config: no flag for " + s.key)
		}
	}
}

// under reports whether the setting is one of keys or lies under one; every setting
// is under no keys.
func (s setting) under(keys []string) bool {
	if len(keys) == 0 {
		return true
	}
	for _, k := range keys {
		if s.key == k || strings.HasPrefix(s.key, k+".") {
			return true
		}
	}
	return false
}

// Load builds the configuration: the defaults, then the file (--config or
// GRAFT_CONFIG, if any), then GRAFT_* variables, then the flags set on fs.
func Load(fs *pflag.FlagSet) (*Config, error) {
	c := Default()
	path := os.Getenv("GRAFT_CONFIG")
	if f := fs.Lookup("config"); f != nil && f.Changed {
		path = f.Value.String()
	}
	v := reflect.ValueOf(&c).Elem()
	if path != "" {
		if err := loadFile(v, path); err != nil {
			return nil, err
		}
	}
	for _, s := range settings() {
		if s.fileOnly {
			continue
		}
		if val, ok := os.LookupEnv(s.env); ok {
			if err := set(v.FieldByIndex(s.index), val); err != nil {
				return nil, fmt.Errorf("config: %s: %w", s.env, err)
			}
		}
	}
	for _, s := range settings() {
		if s.fileOnly {
			continue
		}
		if f := fs.Lookup(s.flag); f != nil && f.Changed {
			if err := set(v.FieldByIndex(s.index), f.Value.String()); err != nil {
				return nil, fmt.Errorf("config: --%s: %w", s.flag, err)
			}
		}
	}
	return &c, c.validate()
}

// File builds a configuration from the defaults and the YAML file at path alone, with
// no variables or flags: the other side of a command that works on two registries.
func File(path string) (*Config, error) {
	c := Default()
	if err := loadFile(reflect.ValueOf(&c).Elem(), path); err != nil {
		return nil, err
	}
	return &c, c.validate()
}

// loadFile sets what the YAML file at path sets. Values go through set, as those of
// variables and flags do, so that every error names its setting.
func loadFile(v reflect.Value, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(b)).Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) { // an empty file
			return nil
		}
		return fmt.Errorf("config: %s: %w", path, err)
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind == yaml.ScalarNode && doc.Content[0].Tag == "!!null" {
		return nil // only comments
	}
	byKey := map[string]setting{}
	for _, s := range settings() {
		byKey[s.key] = s
	}
	var walk func(n *yaml.Node, prefix string) error
	walk = func(n *yaml.Node, prefix string) error {
		if n.Kind != yaml.MappingNode {
			return fmt.Errorf("config: %s: line %d: %s must be a mapping", path, n.Line, strings.TrimSuffix(prefix, "."))
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			key := prefix + kebab(k.Value)
			if s, ok := byKey[key]; ok && s.fileOnly {
				if err := decodeStrict(val, v.FieldByIndex(s.index).Addr().Interface()); err != nil {
					return fmt.Errorf("config: %s: line %d: %s: %w", path, val.Line, key, err)
				}
				continue
			}
			if s, ok := byKey[key]; ok && s.list && val.Kind == yaml.SequenceNode {
				items := make([]string, len(val.Content))
				for j, item := range val.Content {
					if item.Kind != yaml.ScalarNode {
						return fmt.Errorf("config: %s: line %d: %s must be a list of single values", path, item.Line, key)
					}
					items[j] = item.Value
				}
				v.FieldByIndex(s.index).SetString(strings.Join(items, ","))
				continue
			}
			if s, ok := byKey[key]; ok {
				if val.Kind != yaml.ScalarNode {
					return fmt.Errorf("config: %s: line %d: %s must be a single value", path, val.Line, key)
				}
				if err := set(v.FieldByIndex(s.index), val.Value); err != nil {
					return fmt.Errorf("config: %s: line %d: %s: %w", path, val.Line, key, err)
				}
				continue
			}
			if !hasPrefix(byKey, key+".") {
				return fmt.Errorf("config: %s: line %d: unknown setting %s", path, k.Line, prefix+k.Value)
			}
			if err := walk(val, key+"."); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(doc.Content[0], "")
}

// decodeStrict decodes n into dst, refusing keys dst has no field for: a misspelled
// key in a policy must not silently grant or deny something else.
func decodeStrict(n *yaml.Node, dst any) error {
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	return dec.Decode(dst)
}

// kebab spells a key of the file as the settings do, so that the camel case keys
// users know from other tools' files (forcePathStyle) work too.
func kebab(key string) string {
	var b strings.Builder
	for i, r := range key {
		if 'A' <= r && r <= 'Z' {
			if i > 0 {
				b.WriteByte('-')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

func hasPrefix(byKey map[string]setting, prefix string) bool {
	for k := range byKey {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

func set(v reflect.Value, s string) error {
	switch v.Interface().(type) {
	case string:
		v.SetString(s)
	case bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not a boolean", s)
		}
		v.SetBool(b)
	case int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("%q is not an integer", s)
		}
		v.SetInt(int64(n))
	case time.Duration:
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration", s)
		}
		v.SetInt(int64(d))
	}
	return nil
}

func (c *Config) validate() error {
	c.Log.Format = strings.ToLower(c.Log.Format)
	switch c.Log.Format {
	case "", "text", "json":
	default:
		return fmt.Errorf("config: log.format must be text or json, not %q", c.Log.Format)
	}
	c.Log.Level = strings.ToLower(c.Log.Level)
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("config: log.level must be debug, info, warn or error, not %q", c.Log.Level)
	}
	if c.Uploads.TTL <= 0 || c.Uploads.EmptyTTL <= 0 {
		return errors.New("config: uploads.ttl and uploads.empty-ttl must be positive")
	}
	if c.Limits.UploadsPerRepository < 0 || c.Limits.UploadsPerCaller < 0 {
		return errors.New("config: limits.uploads-per-repository and limits.uploads-per-caller must not be negative")
	}
	if c.Shutdown.Timeout <= 0 {
		return errors.New("config: shutdown.timeout must be positive")
	}
	if c.DataDir == "" {
		return errors.New("config: data-dir must be set")
	}
	switch c.GC.OrphanReferrers {
	case "delete", "keep":
	default:
		return fmt.Errorf("config: gc.orphan-referrers must be delete or keep, not %q", c.GC.OrphanReferrers)
	}
	if c.Metadata.Postgres.Timeout <= 0 {
		return errors.New("config: metadata.postgres.timeout must be positive")
	}
	if c.GC.Delay < 0 || c.GC.Interval < 0 {
		return errors.New("config: gc.delay and gc.interval must not be negative")
	}
	if c.Limits.BodyMinBytes <= 0 || c.Limits.BodyWindow < 0 {
		return errors.New("config: limits.body-min-bytes must be positive and limits.body-window not negative")
	}
	if _, err := ParsePrefixes(c.TrustedProxies); err != nil {
		return fmt.Errorf("config: trusted-proxies: %w", err)
	}
	if c.Limits.ManifestMemory < 4<<20 {
		return fmt.Errorf("config: limits.manifest-memory must be at least 4 MiB (4194304), the largest manifest, not %d", c.Limits.ManifestMemory)
	}
	if p := c.Storage.S3.PartSize; p != 0 && p < 5<<20 {
		return fmt.Errorf("config: storage.s3.part-size must be at least 5 MiB (5242880), not %d", p)
	}
	return nil
}

// ParsePrefixes reads a list of CIDRs and addresses (an address is the prefix of
// itself alone), separated by commas or spaces.
func ParsePrefixes(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR nor an address", f)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
