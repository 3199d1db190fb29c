package auth

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseScope(t *testing.T) {
	tests := []struct {
		in   string
		want Scope
		bad  bool
	}{
		{in: "repository:team/app:pull,push", want: Scope{"repository", "team/app", []string{"pull", "push"}}},
		{in: "repository:team/app:pull", want: Scope{"repository", "team/app", []string{"pull"}}},
		{in: "registry:catalog:*", want: Scope{"registry", "catalog", []string{"*"}}},
		{in: "repository(plugin):team/app:pull", want: Scope{"repository", "team/app", []string{"pull"}}},
		// a name with a colon (a host and port) keeps it
		{in: "repository:localhost:5000/app:pull", want: Scope{"repository", "localhost:5000/app", []string{"pull"}}},
		{in: "repository:app:", want: Scope{"repository", "app", []string{}}},
		{in: "repository:app: pull , ,push", want: Scope{"repository", "app", []string{"pull", "push"}}},
		{in: "repository:app", bad: true},
		{in: "repository", bad: true},
		{in: "", bad: true},
		{in: ":app:pull", bad: true},
		{in: "repository::pull", bad: true},
	}
	for _, tt := range tests {
		got, err := ParseScope(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("ParseScope(%q) = %+v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseScope(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseScopesSplitsAndSkips(t *testing.T) {
	got := ParseScopes([]string{"repository:a:pull repository:b:push", "nonsense", "registry:catalog:*"})
	var names []string
	for _, s := range got {
		names = append(names, s.String())
	}
	want := "repository:a:pull repository:b:push registry:catalog:*"
	if strings.Join(names, " ") != want {
		t.Errorf("ParseScopes = %q, want %q", names, want)
	}
}

func TestParseActions(t *testing.T) {
	tests := []struct {
		in   []string
		want Actions
		bad  bool
	}{
		{in: []string{"pull"}, want: Pull},
		{in: []string{"pull,push"}, want: Pull | Push},
		{in: []string{"pull", "delete"}, want: Pull | Delete},
		{in: []string{"*"}, want: All},
		{in: []string{" PULL "}, want: Pull},
		{in: nil, want: 0},
		{in: []string{"pull,write"}, bad: true},
		{in: []string{"admin"}, bad: true},
	}
	for _, tt := range tests {
		got, err := ParseActions(tt.in)
		if tt.bad != (err != nil) || got != tt.want && !tt.bad {
			t.Errorf("ParseActions(%q) = %v, %v; want %v (error: %v)", tt.in, got, err, tt.want, tt.bad)
		}
	}
	if got := (Pull | Delete).String(); got != "pull,delete" {
		t.Errorf("(Pull|Delete).String() = %q", got)
	}
}

func TestChallengeRoundTrip(t *testing.T) {
	h := BearerChallenge(`http://127.0.0.1:5000/auth/token`, "graft",
		[]Scope{RepositoryScope("team/app", Pull|Push), RepositoryScope("other", Pull)}, "insufficient_scope")
	want := `Bearer realm="http://127.0.0.1:5000/auth/token",service="graft",scope="repository:team/app:pull,push repository:other:pull",error="insufficient_scope"`
	if h != want {
		t.Fatalf("BearerChallenge = %s\nwant            %s", h, want)
	}
	c, err := ParseChallenge(h)
	if err != nil {
		t.Fatal(err)
	}
	if c.Scheme != "Bearer" || c.Params["realm"] != "http://127.0.0.1:5000/auth/token" || c.Params["service"] != "graft" ||
		c.Params["scope"] != "repository:team/app:pull,push repository:other:pull" || c.Params["error"] != "insufficient_scope" {
		t.Errorf("ParseChallenge = %+v", c)
	}
}

func TestParseChallenge(t *testing.T) {
	tests := []struct {
		in     string
		scheme string
		params map[string]string
		bad    bool
	}{
		{in: `Basic realm="graft"`, scheme: "Basic", params: map[string]string{"realm": "graft"}},
		{in: `bearer Realm=https://x/token, Service=reg`, scheme: "bearer", params: map[string]string{"realm": "https://x/token", "service": "reg"}},
		{in: `Bearer realm="a \"quoted\" \\ realm"`, scheme: "Bearer", params: map[string]string{"realm": `a "quoted" \ realm`}},
		{in: `Bearer realm="x",service="y", Basic realm="z"`, scheme: "Bearer", params: map[string]string{"realm": "x", "service": "y"}},
		{in: `Bearer`, scheme: "Bearer", params: map[string]string{}},
		{in: `Bearer realm="unterminated`, bad: true},
		{in: ``, bad: true},
		{in: `"Bearer"`, bad: true},
		{in: `Bearer token68value`, bad: true},
	}
	for _, tt := range tests {
		c, err := ParseChallenge(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("ParseChallenge(%q) = %+v, want an error", tt.in, c)
			}
			continue
		}
		if err != nil || c.Scheme != tt.scheme || !reflect.DeepEqual(c.Params, tt.params) {
			t.Errorf("ParseChallenge(%q) = %+v, %v; want %s %v", tt.in, c, err, tt.scheme, tt.params)
		}
	}
}
