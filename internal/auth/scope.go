package auth

import (
	"fmt"
	"strings"
)

// Actions is a set of things that may be done with a repository.
type Actions uint8

// The actions of the token protocol. Docker and OCI clients ask for pull and push;
// delete is what distribution and ACR call it.
const (
	Pull Actions = 1 << iota
	Push
	Delete

	// All is every action; "*" in a scope.
	All = Pull | Push | Delete
)

var actionNames = []struct {
	a    Actions
	name string
}{{Pull, "pull"}, {Push, "push"}, {Delete, "delete"}}

// Has reports whether a holds every action of b.
func (a Actions) Has(b Actions) bool { return a&b == b }

// Names spells a as the token protocol does, in a fixed order.
func (a Actions) Names() []string {
	out := []string{}
	for _, n := range actionNames {
		if a&n.a != 0 {
			out = append(out, n.name)
		}
	}
	return out
}

func (a Actions) String() string { return strings.Join(a.Names(), ",") }

// ParseActions reads action names: pull, push, delete, or * for all of them.
// Unknown names are an error: a typo in a policy must not grant less (or more) than
// its author meant without saying so.
func ParseActions(names []string) (Actions, error) {
	var a Actions
	for _, raw := range names {
		for name := range strings.SplitSeq(raw, ",") {
			name = strings.TrimSpace(strings.ToLower(name))
			if b, ok := actionOf(name); ok {
				a |= b
				continue
			}
			return 0, fmt.Errorf("unknown action %q: want pull, push, delete or *", clip(name))
		}
	}
	return a, nil
}

func actionOf(name string) (Actions, bool) {
	if name == "*" {
		return All, true
	}
	for _, n := range actionNames {
		if n.name == name {
			return n.a, true
		}
	}
	return 0, false
}

// Resource types of the token protocol that graft grants access to.
const (
	TypeRepository = "repository"
	TypeRegistry   = "registry"
	// CatalogName is the registry resource of /v2/_catalog: registry:catalog:*.
	CatalogName = "catalog"
)

// Scope is access to one resource as the token protocol spells it:
// repository:team/app:pull,push or registry:catalog:*.
type Scope struct {
	Type    string
	Name    string
	Actions []string
}

func (s Scope) String() string {
	return s.Type + ":" + s.Name + ":" + strings.Join(s.Actions, ",")
}

// RepositoryScope is the scope of actions on repository name.
func RepositoryScope(name string, a Actions) Scope {
	return Scope{Type: TypeRepository, Name: name, Actions: a.Names()}
}

// CatalogScope is the scope of /v2/_catalog.
var CatalogScope = Scope{Type: TypeRegistry, Name: CatalogName, Actions: []string{"*"}}

// ParseScope reads one scope. The name is everything between the first and the last
// colon, so that names holding a colon (a registry host with a port) survive; a type
// with a class, repository(plugin), is read as its type.
func ParseScope(s string) (Scope, error) {
	typ, rest, ok := strings.Cut(s, ":")
	i := strings.LastIndexByte(rest, ':')
	if !ok || i < 0 {
		return Scope{}, fmt.Errorf("scope %q is not type:name:actions", clip(s))
	}
	name, actions := rest[:i], rest[i+1:]
	if j := strings.IndexByte(typ, '('); j >= 0 && strings.HasSuffix(typ, ")") {
		typ = typ[:j]
	}
	if typ == "" || name == "" {
		return Scope{}, fmt.Errorf("scope %q has no type or no name", clip(s))
	}
	sc := Scope{Type: typ, Name: name, Actions: []string{}}
	for a := range strings.SplitSeq(actions, ",") {
		if a = strings.TrimSpace(a); a != "" {
			sc.Actions = append(sc.Actions, a)
		}
	}
	return sc, nil
}

// ParseScopes reads the scopes of token requests: each value may hold several,
// separated by spaces (OAuth2 and the conformance suite put them in one parameter,
// docker repeats the parameter). Malformed scopes are left out: a client asking for
// nonsense gets a token for the rest.
func ParseScopes(values []string) []Scope {
	var out []Scope
	for _, v := range values {
		for _, f := range strings.Fields(v) {
			if s, err := ParseScope(f); err == nil {
				out = append(out, s)
			}
		}
	}
	return out
}

// clip shortens what a client sent before it goes into an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
