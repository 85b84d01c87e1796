// Package routes maps requests to what their route requires: public, a scope
// per method, an unknown action, or plain authentication (docs/design.md steps R, 0
// and 12–14). It holds the built-in table for Meet's external API and the
// loader for routes files.
//
// Security rationale: tables match what the backend will route on, not the
// raw request target. The path is percent-decoded once, without its query
// string (authz.RoutePath), as WSGI's PATH_INFO and Django's router see it,
// so "/external-api/v1.0/room%73/" is the rooms list. What cannot be decided
// safely (an encoded "/" or "\", NUL or control characters, dot or empty
// segments in any spelling, a "#" in the target, invalid escapes or UTF-8)
// is refused with a 403 before any token check. Methods are judged
// upper-cased, as Django does, so "delete" is DELETE; a method that is not an
// RFC 9110 token is refused. Paths stay case-sensitive.
//
// Tables fail closed under their prefixes: a request under a prefix (Meet's
// "/external-api/") that no route names is an unknown action (403 after
// authentication), not "authentication only". Anything that cannot be parsed
// stops start-up: a bad routes file must never degrade into "allow
// everything".
package routes

import (
	"regexp"
	"strings"

	"github.com/gatehouse-authz/gatehouse/authz"
)

// method is an index into per-method tables; 0 is "not a known method".
type method uint8

const (
	mUnknown method = iota
	mGET
	mHEAD
	mPOST
	mPUT
	mPATCH
	mDELETE
	mOPTIONS
	mTRACE
	mCONNECT
	nMethods
)

var methodNames = [nMethods]string{"", "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}

// parseMethod maps an HTTP method to its index without allocating. The
// method is upper-cased (ASCII) first, as Django does before dispatching: a
// request's "delete" runs the DELETE handler, so it must meet DELETE's rule.
func parseMethod(s string) method {
	const longest = len("OPTIONS")
	if len(s) < 3 || len(s) > longest {
		return mUnknown
	}
	var buf [longest]byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		buf[i] = c
	}
	switch string(buf[:len(s)]) {
	case "GET":
		return mGET
	case "HEAD":
		return mHEAD
	case "POST":
		return mPOST
	case "PUT":
		return mPUT
	case "PATCH":
		return mPATCH
	case "DELETE":
		return mDELETE
	case "OPTIONS":
		return mOPTIONS
	case "TRACE":
		return mTRACE
	case "CONNECT":
		return mCONNECT
	default:
		return mUnknown
	}
}

// methodSet is a bit set of methods; the zero set means "any method".
type methodSet uint16

func (s methodSet) has(m method) bool { return s == 0 || s&(1<<m) != 0 }

// Default is what a table does with requests no route matches.
type Default uint8

const (
	// DefaultAuthenticate requires authentication and no scope.
	DefaultAuthenticate Default = iota
	// DefaultDeny answers 403 after authentication.
	DefaultDeny
	// DefaultPublic lets unmatched requests through without identity.
	DefaultPublic
	// DefaultUnknownAction answers 403 "Insufficient permissions. Unknown
	// action." after authentication: what Meet's table does under its
	// prefix with what it does not name.
	DefaultUnknownAction
)

// parseDefault reads the spelling of a Default in routes files.
func parseDefault(s string) (Default, bool) {
	switch s {
	case "authenticate":
		return DefaultAuthenticate, true
	case "deny":
		return DefaultDeny, true
	case "public":
		return DefaultPublic, true
	case "unknown-action":
		return DefaultUnknownAction, true
	}
	return 0, false
}

func (d Default) rule() authz.Rule {
	switch d {
	case DefaultDeny:
		return authz.Rule{Deny: true}
	case DefaultPublic:
		return authz.Rule{Public: true}
	case DefaultUnknownAction:
		return authz.Rule{UnknownAction: true}
	default:
		return authz.Rule{}
	}
}

// prefixDefault is what unmatched requests under a prefix get.
type prefixDefault struct {
	prefix string
	def    Default
}

type matchKind uint8

const (
	matchExact matchKind = iota
	matchPrefix
	matchRegex
	// matchDRFList is a Django REST framework collection route (or a
	// detail=False action) with its format suffixes: pattern + "/", or
	// pattern + "." + format + optional "/" (DRF's
	// `name\.(?P<format>[a-z0-9]+)/?$`). pattern has no trailing slash.
	matchDRFList
	// matchDRFDetail is a DRF detail route with its format suffixes:
	// pattern + a non-empty id without "." or "/" (DRF's default
	// lookup_value_regex, [^/.]+) + "/", or + "." + format + optional "/".
	// pattern ends with "/".
	matchDRFDetail
)

// compileRegex prepares a regex route.
func (r *route) compileRegex(pattern string) error {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return err
	}
	r.kind, r.pattern, r.re = matchRegex, pattern, re
	if strings.HasPrefix(pattern, "^") {
		r.literal, _ = re.LiteralPrefix()
	}
	return nil
}

// route is one compiled entry of a table.
type route struct {
	kind    matchKind
	pattern string
	re      *regexp.Regexp
	// literal must begin every path an anchored regex matches: checking it
	// first keeps non-matching regex routes at the cost of a string compare.
	literal string
	methods methodSet
	// rule applies to every matching method unless actions is set.
	rule authz.Rule
	// actions maps a method to its required scope; a matching method with
	// no action is an unknown action (hasAction false).
	actions   [nMethods]string
	hasAction [nMethods]bool
	byAction  bool
	// allow, when set, is the Allow header of the route as the backend
	// serves it (a Django REST framework route: its mapped methods, HEAD
	// with GET, and OPTIONS). A method outside it is one the backend does
	// not route: 405 under the 2026.08 profile (authz.MethodPolicy).
	allow string
}

func (r *route) matches(path string) bool {
	switch r.kind {
	case matchExact:
		return path == r.pattern
	case matchPrefix:
		return strings.HasPrefix(path, r.pattern)
	case matchDRFList:
		rest, ok := strings.CutPrefix(path, r.pattern)
		return ok && drfEnding(rest)
	case matchDRFDetail:
		rest, ok := strings.CutPrefix(path, r.pattern)
		if !ok {
			return false
		}
		id := 0
		for id < len(rest) && rest[id] != '/' && rest[id] != '.' {
			id++
		}
		return id > 0 && drfEnding(rest[id:])
	default:
		return strings.HasPrefix(path, r.literal) && r.re.MatchString(path)
	}
}

// drfEnding reports whether rest ends a DRF route: "/", or "." + a format
// ([a-z0-9]+) + an optional "/".
func drfEnding(rest string) bool {
	if rest == "/" {
		return true
	}
	if rest == "" || rest[0] != '.' {
		return false
	}
	f := strings.TrimSuffix(rest[1:], "/")
	if f == "" {
		return false
	}
	for i := 0; i < len(f); i++ {
		if c := f[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

func (r *route) ruleFor(m method) authz.Rule {
	if !r.byAction {
		return r.rule
	}
	if r.hasAction[m] {
		return authz.Rule{Scope: r.actions[m]}
	}
	return authz.Rule{UnknownAction: true}
}

// Table is an ordered list of routes; the first match wins. A request no
// route matches gets the default of the longest prefix it is under, or else
// the table's default. It implements authz.Policy and is safe for concurrent
// use (immutable once built).
type Table struct {
	name   string
	routes []route
	// prefixes are sorted longest first.
	prefixes []prefixDefault
	def      Default
}

// Name returns the table's name, used by Envoy's per-route
// context_extensions (gatehouse.routes).
func (t *Table) Name() string { return t.name }

// Len returns the number of routes.
func (t *Table) Len() int { return len(t.routes) }

// Match implements authz.Policy. It matches the path the backend will see
// (authz.RouteTarget: without the query string, percent-decoded once) and
// the method upper-cased; a request RouteTarget refuses gets its refusal.
func (t *Table) Match(req *authz.Request) authz.Rule {
	path, refuse := authz.RouteTarget(req)
	if refuse != authz.RefuseNone {
		return authz.Rule{Refuse: refuse}
	}
	return t.match(parseMethod(req.Method), path)
}

// Allow implements authz.MethodPolicy: the Allow header of the route req
// matches when that route is one the backend serves with a fixed set of
// methods (Meet's rooms routes) and req's method is not among them. OPTIONS
// is always served (DRF's metadata action), so it gets "".
func (t *Table) Allow(req *authz.Request) string {
	path, refuse := authz.RouteTarget(req)
	if refuse != authz.RefuseNone {
		return ""
	}
	return t.allowFor(parseMethod(req.Method), path)
}

// allowFor is Allow for a decoded path: the first route that matches
// decides, as in match.
func (t *Table) allowFor(m method, path string) string {
	for i := range t.routes {
		r := &t.routes[i]
		if !r.methods.has(m) || !r.matches(path) {
			continue
		}
		if r.allow == "" || m == mOPTIONS || (r.byAction && r.hasAction[m]) {
			return ""
		}
		return r.allow
	}
	return ""
}

// match finds the rule of a decoded path.
func (t *Table) match(m method, path string) authz.Rule {
	for i := range t.routes {
		r := &t.routes[i]
		if !r.methods.has(m) || !r.matches(path) {
			continue
		}
		return r.ruleFor(m)
	}
	for _, p := range t.prefixes {
		if strings.HasPrefix(path, p.prefix) {
			return p.def.rule()
		}
	}
	return t.def.rule()
}
