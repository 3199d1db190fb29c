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
	Log     struct {
		Format string `yaml:"format" usage:"log format: text or json (text on a terminal by default)"`
		Level  string `yaml:"level" usage:"log level: debug, info, warn or error"`
	} `yaml:"log"`
	Delete struct {
		Cascade bool `yaml:"cascade" usage:"deleting a manifest deletes its referrers and the children only it uses"`
	} `yaml:"delete"`
	Uploads struct {
		TTL time.Duration `yaml:"ttl" usage:"how long an upload session may go unwritten before it is reclaimed"`
	} `yaml:"uploads"`
	Shutdown struct {
		Timeout time.Duration `yaml:"timeout" usage:"how long shutdown waits for requests in flight"`
	} `yaml:"shutdown"`
}

// Default returns the configuration graft runs with when nothing is set.
func Default() Config {
	var c Config
	c.Addr = "127.0.0.1:5000"
	c.DataDir = "graft-data"
	c.Log.Level = "info"
	c.Delete.Cascade = true
	c.Uploads.TTL = 24 * time.Hour
	c.Shutdown.Timeout = 30 * time.Second
	return c
}

// setting is one leaf of Config.
type setting struct {
	key   string // log.format
	flag  string // log-format
	env   string // GRAFT_LOG_FORMAT
	usage string
	index []int // field path in Config
}

func settings() []setting {
	var out []setting
	var walk func(t reflect.Type, prefix string, index []int)
	walk = func(t reflect.Type, prefix string, index []int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			key := prefix + f.Tag.Get("yaml")
			idx := append(append([]int{}, index...), i)
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
			})
		}
	}
	walk(reflect.TypeFor[Config](), "", nil)
	return out
}

// AddFlags adds a flag for every setting to fs, and --config.
func AddFlags(fs *pflag.FlagSet) {
	def := reflect.ValueOf(Default())
	fs.String("config", "", "YAML configuration file (also GRAFT_CONFIG)")
	for _, s := range settings() {
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

// Load builds the configuration: the defaults, then the file (--config or
// GRAFT_CONFIG, if any), then GRAFT_* variables, then the flags set on fs.
func Load(fs *pflag.FlagSet) (*Config, error) {
	c := Default()
	path := os.Getenv("GRAFT_CONFIG")
	if f := fs.Lookup("config"); f != nil && f.Changed {
		path = f.Value.String()
	}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) { // io.EOF: an empty file
			return nil, fmt.Errorf("config: %s: %w", path, err)
		}
	}
	v := reflect.ValueOf(&c).Elem()
	for _, s := range settings() {
		if val, ok := os.LookupEnv(s.env); ok {
			if err := set(v.FieldByIndex(s.index), val); err != nil {
				return nil, fmt.Errorf("config: %s: %w", s.env, err)
			}
		}
	}
	for _, s := range settings() {
		if f := fs.Lookup(s.flag); f != nil && f.Changed {
			if err := set(v.FieldByIndex(s.index), f.Value.String()); err != nil {
				return nil, fmt.Errorf("config: --%s: %w", s.flag, err)
			}
		}
	}
	return &c, c.validate()
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
	switch c.Log.Format {
	case "", "text", "json":
	default:
		return fmt.Errorf("config: log.format must be text or json, not %q", c.Log.Format)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("config: log.level must be debug, info, warn or error, not %q", c.Log.Level)
	}
	if c.Uploads.TTL <= 0 {
		return errors.New("config: uploads.ttl must be positive")
	}
	if c.DataDir == "" {
		return errors.New("config: data-dir must be set")
	}
	return nil
}
