// Package routes maps requests to what their route requires: public, a scope
// per method, an unknown action, or plain authentication (DESIGN §2 steps 0
// and 12–14). It holds the built-in table for Meet's external API and the
// loader for routes files.
//
// Security rationale: matching works on the raw path Envoy sends, without
// decoding or normalising it, so an encoded or padded variant of a public path
// is simply not that path and falls to the default (authentication). Anything
// that cannot be parsed stops start-up: a bad routes file must never degrade
// into "allow everything".
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

// parseMethod maps an HTTP method to its index without allocating. Methods
// are case-sensitive (RFC 9110): "get" is not GET and maps to no action.
func parseMethod(s string) method {
	switch s {
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
)

func (d Default) rule() authz.Rule {
	switch d {
	case DefaultDeny:
		return authz.Rule{Deny: true}
	case DefaultPublic:
		return authz.Rule{Public: true}
	default:
		return authz.Rule{}
	}
}

type matchKind uint8

const (
	matchExact matchKind = iota
	matchPrefix
	matchRegex
	// matchSegment is prefix + one non-empty segment without "." or "/" +
	// "/": Meet's detail routes, matched without a regexp.
	matchSegment
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
}

func (r *route) matches(path string) bool {
	switch r.kind {
	case matchExact:
		return path == r.pattern
	case matchPrefix:
		return strings.HasPrefix(path, r.pattern)
	case matchSegment:
		rest, ok := strings.CutPrefix(path, r.pattern)
		if !ok || len(rest) < 2 || rest[len(rest)-1] != '/' {
			return false
		}
		return !strings.ContainsAny(rest[:len(rest)-1], "/.")
	default:
		return strings.HasPrefix(path, r.literal) && r.re.MatchString(path)
	}
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

// Table is an ordered list of routes; the first match wins. It implements
// authz.Policy and is safe for concurrent use (immutable once built).
type Table struct {
	name   string
	routes []route
	def    Default
}

// Name returns the table's name, used by Envoy's per-route
// context_extensions (gatehouse.routes).
func (t *Table) Name() string { return t.name }

// Len returns the number of routes.
func (t *Table) Len() int { return len(t.routes) }

// Match implements authz.Policy. It matches the path without its query
// string, as sent (no decoding, no normalisation).
func (t *Table) Match(req *authz.Request) authz.Rule {
	path := req.Path
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	m := parseMethod(req.Method)
	for i := range t.routes {
		r := &t.routes[i]
		if !r.methods.has(m) || !r.matches(path) {
			continue
		}
		return r.ruleFor(m)
	}
	return t.def.rule()
}
