package routes

import (
	"fmt"
	"os"
	"strings"

	"github.com/gatehouse-authz/gatehouse/authz"
)

// Context extension keys Envoy can set per route
// (ExtAuthzPerRoute.check_settings.context_extensions).
const (
	// ExtTable names the table to match the request against.
	ExtTable = "gatehouse.routes"
	// ExtScope names the scope the route requires, bypassing path matching.
	ExtScope = "gatehouse.scope"
)

// AuthenticateTableName is the built-in table that requires authentication
// and no scope for every request.
const AuthenticateTableName = "authenticate"

// Authenticate returns the built-in table that requires authentication for
// every request.
func Authenticate() *Table { return &Table{name: AuthenticateTableName} }

// Set is the authz.Policy gatehouse runs: a default table, the other known
// tables by name, and Envoy's per-route choices.
type Set struct {
	def    *Table
	byName map[string]*Table
}

// NewSet returns a Set matching with def unless a request names another of
// tables (or a built-in) in its context extensions.
func NewSet(def *Table, tables ...*Table) *Set {
	s := &Set{def: def, byName: map[string]*Table{}}
	for _, t := range append([]*Table{Meet(), Authenticate(), def}, tables...) {
		s.byName[t.name] = t
	}
	return s
}

// Resolve builds the Set for a GATEHOUSE_ROUTES value: empty (authenticate
// everything), a built-in table name, or the path of a routes file.
func Resolve(spec string) (*Set, error) {
	switch spec {
	case "", AuthenticateTableName:
		return NewSet(Authenticate()), nil
	case MeetTableName:
		return NewSet(Meet()), nil
	}
	if _, err := os.Stat(spec); err != nil {
		return nil, fmt.Errorf("routes: %q is neither a built-in table (%s, %s) nor a readable file: %w",
			spec, MeetTableName, AuthenticateTableName, err)
	}
	t, err := Load(spec)
	if err != nil {
		return nil, err
	}
	return NewSet(t), nil
}

// Default returns the table used when a request names none.
func (s *Set) Default() *Table { return s.def }

// Allow implements authz.MethodPolicy, following the same table as Match:
// "" when a gatehouse.scope extension decides, or an unknown table is named.
func (s *Set) Allow(req *authz.Request) string {
	path, refuse := authz.RouteTarget(req)
	if refuse != authz.RefuseNone {
		return ""
	}
	t := s.def
	if ext := req.ContextExtensions; len(ext) > 0 {
		if scope := strings.TrimSpace(ext[ExtScope]); scope != "" {
			return ""
		}
		if name, ok := ext[ExtTable]; ok {
			if t = s.byName[name]; t == nil {
				return ""
			}
		}
	}
	return t.allowFor(parseMethod(req.Method), path)
}

// Match implements authz.Policy. A request authz.RouteTarget refuses is
// refused whatever the extensions say. Otherwise a gatehouse.scope extension
// wins over path matching; a gatehouse.routes extension picks the table. An
// unknown table name denies (after authentication) rather than guess.
func (s *Set) Match(req *authz.Request) authz.Rule {
	path, refuse := authz.RouteTarget(req)
	if refuse != authz.RefuseNone {
		return authz.Rule{Refuse: refuse}
	}
	t := s.def
	if ext := req.ContextExtensions; len(ext) > 0 {
		if scope := strings.TrimSpace(ext[ExtScope]); scope != "" {
			return authz.Rule{Scope: scope}
		}
		if name, ok := ext[ExtTable]; ok {
			named, known := s.byName[name]
			if !known {
				return authz.Rule{Deny: true}
			}
			t = named
		}
	}
	return t.match(parseMethod(req.Method), path)
}
