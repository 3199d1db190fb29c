package auth

import (
	"fmt"
	"github.com/graft-registry/graft/internal/pattern"
	"slices"
	"strings"
	"time"
)

// Kind is the kind of principal an Identity is.
type Kind uint8

const (
	// Anonymous is a caller without credentials.
	Anonymous Kind = iota
	// User is a user of the htpasswd file or the configuration, or the common name of
	// a client certificate.
	User
	// Token is a repository-scoped token: it may do its actions on its repositories
	// and nothing else, whatever the policies say.
	Token
)

func (k Kind) String() string {
	switch k {
	case User:
		return "user"
	case Token:
		return "token"
	}
	return "anonymous"
}

// Identity is who a caller proved to be.
type Identity struct {
	Kind Kind
	Name string
	// repos and actions are what a repository-scoped token may do.
	repos   pattern.Set
	actions Actions
	// expires is when a repository-scoped token stops working; zero for never.
	expires time.Time
	// version changes with the identity's secret, so that the tokens issued before a
	// password change or a revocation stop working. Empty for a client certificate.
	version string
}

// Rule grants actions on the repositories that match its patterns.
type Rule struct {
	Repositories []string
	// Pull, Push and Delete name who may: user names, group:NAME, or * for every
	// user (not tokens, not anonymous callers).
	Pull, Push, Delete []string
	// AnonymousPull lets callers without credentials pull.
	AnonymousPull bool
}

// PolicyConfig is the access policy as configured.
type PolicyConfig struct {
	// Admins may do everything everywhere: user names or group:NAME.
	Admins []string
	// Groups are group names with their members.
	Groups map[string][]string
	// UserGroups are the groups users belong to besides those Groups lists.
	UserGroups map[string][]string
	Rules      []Rule
}

// Policy decides what an identity may do with a repository.
type Policy struct {
	admins   subjects
	groupsOf map[string][]string
	rules    []rule
}

type rule struct {
	repos           pattern.Set
	pull, push, del subjects
	anonymousPull   bool
}

// subjects are the users a rule names.
type subjects struct {
	users, groups map[string]bool
	everyone      bool
}

func (s subjects) has(name string, groups []string) bool {
	if s.everyone || s.users[name] {
		return true
	}
	for _, g := range groups {
		if s.groups[g] {
			return true
		}
	}
	return false
}

// NewPolicy compiles c. A group that a rule names but nothing defines is an error:
// a typo would otherwise grant nothing, silently.
func NewPolicy(c PolicyConfig) (*Policy, error) {
	p := &Policy{groupsOf: map[string][]string{}}
	known := map[string]bool{}
	for g, members := range c.Groups {
		known[g] = true
		for _, m := range members {
			p.groupsOf[m] = appendNew(p.groupsOf[m], g)
		}
	}
	for u, gs := range c.UserGroups {
		for _, g := range gs {
			known[g] = true
			p.groupsOf[u] = appendNew(p.groupsOf[u], g)
		}
	}
	var err error
	if p.admins, err = compileSubjects(c.Admins, known, "admins"); err != nil {
		return nil, err
	}
	if p.admins.everyone {
		return nil, fmt.Errorf("auth.admins: * would make every user an admin; name them")
	}
	for i, r := range c.Rules {
		where := fmt.Sprintf("auth.policies[%d]", i)
		if len(r.Repositories) == 0 {
			return nil, fmt.Errorf("%s: repositories must name at least one pattern", where)
		}
		var cr rule
		if cr.repos, err = pattern.Repositories(r.Repositories); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if cr.pull, err = compileSubjects(r.Pull, known, where+".pull"); err != nil {
			return nil, err
		}
		if cr.push, err = compileSubjects(r.Push, known, where+".push"); err != nil {
			return nil, err
		}
		if cr.del, err = compileSubjects(r.Delete, known, where+".delete"); err != nil {
			return nil, err
		}
		cr.anonymousPull = r.AnonymousPull
		p.rules = append(p.rules, cr)
	}
	return p, nil
}

func appendNew(s []string, v string) []string {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

func compileSubjects(names []string, groups map[string]bool, where string) (subjects, error) {
	s := subjects{users: map[string]bool{}, groups: map[string]bool{}}
	for _, n := range names {
		n = strings.TrimSpace(n)
		switch {
		case n == "*":
			s.everyone = true
		case strings.HasPrefix(n, "group:"):
			g := strings.TrimPrefix(n, "group:")
			if !groups[g] {
				return s, fmt.Errorf("%s: group %q is defined nowhere (auth.groups, or the groups of a user in auth.users)", where, g)
			}
			s.groups[g] = true
		case n == "":
			return s, fmt.Errorf("%s: an empty name", where)
		default:
			s.users[n] = true
		}
	}
	return s, nil
}

// Open reports whether the policy has no rules, in which case every user may do
// everything: what `graft serve --htpasswd FILE` starts with.
func (p *Policy) Open() bool { return len(p.rules) == 0 }

// Allowed returns what id may do with repository repo.
func (p *Policy) Allowed(id Identity, repo string) Actions {
	switch id.Kind {
	case Token:
		if id.repos.Match(repo) {
			return id.actions
		}
		return 0
	case Anonymous:
		for _, r := range p.rules {
			if r.anonymousPull && r.repos.Match(repo) {
				return Pull
			}
		}
		return 0
	}
	if p.Open() || p.admin(id) {
		return All
	}
	groups := p.groupsOf[id.Name]
	var a Actions
	for _, r := range p.rules {
		if !r.repos.Match(repo) {
			continue
		}
		if r.pull.has(id.Name, groups) || r.anonymousPull {
			a |= Pull
		}
		if r.push.has(id.Name, groups) {
			a |= Push
		}
		if r.del.has(id.Name, groups) {
			a |= Delete
		}
	}
	return a
}

func (p *Policy) admin(id Identity) bool {
	return id.Kind == User && p.admins.has(id.Name, p.groupsOf[id.Name])
}

// Everywhere reports whether id may pull every repository there is or will be, as a
// mount that names no source repository needs.
func (p *Policy) Everywhere(id Identity) bool {
	switch id.Kind {
	case User:
		return p.Open() || p.admin(id)
	case Token:
		return id.actions.Has(Pull) && slices.ContainsFunc(id.repos, func(pt pattern.Pattern) bool { return pt.String() == "**" })
	}
	return false
}

// AnonymousAccess reports whether any rule lets anonymous callers pull.
func (p *Policy) AnonymousAccess() bool {
	return slices.ContainsFunc(p.rules, func(r rule) bool { return r.anonymousPull })
}
