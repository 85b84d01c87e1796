package authz

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"unique"

	"github.com/gatehouse-authz/gatehouse/userstore"
)

// This file is the 2026.08 profile's decision path (docs/design.md#profiles):
// token kinds tried in order, Meet's claim checks in their 2026.08 order,
// scopes normalised, and 405 for a method the rooms routes do not route.
// The 2025.10 path (Authorizer.Decide's own steps) shares the credential
// steps, the verifier, the directory lookups and the permission rules.

// kindID identifies a token kind. Kinds are tried in the order Meet lists
// its authentication_classes: application tokens, then add-on tokens, then
// OIDC access tokens checked by introspection (resource.go), which are not
// a tokenKind: they are not decoded here but sent to the provider.
type kindID uint8

const (
	kindApplication kindID = iota
	kindAddon
)

// claimFlags record which of Meet's claim checks a 2026.08 token passes.
// Each is read when its turn comes, some after a directory lookup: the
// order of the answers is Meet's, not the order the claims were read in.
type claimFlags uint8

const (
	// flagUserID: user_id is a usable id (a non-empty string that is a safe
	// header value). Without it: "Invalid token claims.".
	flagUserID claimFlags = 1 << iota
	// flagClientID: client_id likewise (application tokens only).
	flagClientID
	// flagDelegated: delegated is JSON true (application tokens only).
	flagDelegated
	// flagScopeSafe: the granted scopes can be sent as a header value.
	flagScopeSafe
)

// tokenKind is one kind of token: its verifier holds its own key, algorithm,
// issuer and audience.
type tokenKind struct {
	id kindID
	v  *verifier
}

// readClaims reads, from a token this kind decoded, what Meet's checks of
// the kind look at. Python's truthiness is narrowed as under 2025.10 (ids
// are non-empty strings, delegated is JSON true; docs/design.md#meet-claims),
// but nothing is refused here: decideKinds answers in Meet's order.
func (k *tokenKind) readClaims(c *claims, mc map[string]any, scopesPrefix string) *claims {
	c.kind = k.id
	if raw, _ := mc["user_id"].(string); raw != "" && HeaderSafe(raw) {
		c.flags |= flagUserID
		c.userID, c.userIDOK = k.v.normalizeUserID(raw)
	}
	if k.id == kindApplication {
		if id, _ := mc["client_id"].(string); id != "" && HeaderSafe(id) {
			c.flags |= flagClientID
			c.clientID = unique.Make(id).Value()
		}
		if delegated, _ := mc["delegated"].(bool); delegated {
			c.flags |= flagDelegated
		}
	}
	// Add-on tokens carry no application: client_id, even when present,
	// is nobody's to vouch for, so it is neither checked nor sent upstream.
	scope, set, safe := scopeClaim2608(mc["scope"], scopesPrefix)
	c.scopeSet = set
	if safe {
		c.flags |= flagScopeSafe
		c.scope = unique.Make(scope).Value()
	}
	return c
}

// decideKinds is Decide under 2026.08, once the bearer token is read.
func (a *Authorizer) decideKinds(ctx context.Context, req *Request, rule Rule, token string) Decision {
	c, deny, passed := a.kindClaims(token)
	if passed && a.introspector != nil {
		// No JWT kind decoded it: it is the resource server's to try.
		return a.decideIntrospected(ctx, req, rule, token)
	}
	if deny != nil {
		return *deny
	}
	id := Identity{UserID: c.userID, ClientID: c.clientID, Scope: c.scope}
	if c.kind == kindApplication {
		// ApplicationJWTAuthentication.validate_payload: client_id, the
		// application (always looked up), then delegated.
		if c.flags&flagClientID == 0 {
			return withIdentity(denyInvalidClaims, id)
		}
		if d, done := a.lookup(ctx, userstore.App, c.clientID, id); done {
			return d
		}
		if c.flags&flagDelegated == 0 {
			return withIdentity(denyInvalidTokenType, id)
		}
	}
	// BaseJWTAuthentication.get_user, for every kind.
	if c.flags&flagUserID == 0 {
		return withIdentity(denyInvalidClaims, id)
	}
	if !c.userIDOK {
		return withIdentity(denyUserNotFound, id)
	}
	if d, done := a.lookup(ctx, userstore.User, c.userID, id); done {
		return d
	}
	if c.flags&flagScopeSafe == 0 {
		// gatehouse's own refusal (Meet would compare and carry on): the
		// scopes could not be sent upstream as they are.
		return withIdentity(denyInvalidClaims, id)
	}
	return a.withKey(a.permit(req, rule, c, id), c)
}

// permit is the last step of every 2026.08 decision, whatever the token's
// kind: the route's rule applied to an authenticated caller.
func (a *Authorizer) permit(req *Request, rule Rule, c *claims, id Identity) Decision {
	if rule.UnknownAction {
		// DRF answers a method its router does not route with 405, after
		// authentication and permissions, which let an unrouted action
		// through (BaseScopePermission.get_required_scope).
		if d, ok := a.methodNotAllowed(req); ok {
			return withIdentity(d, id)
		}
	}
	return grant(rule, c, id)
}

// kindClaims returns the claims of token under 2026.08. The kinds are tried
// in order and the first that decodes the token reads its claims. A kind
// that cannot decode it (failDecode, failImmature) passes it to the next;
// expiry and a wrong iss or aud stop at the kind that found them. When no
// kind decodes it, passed is true with "Invalid token.": decideKinds then
// passes the token to the resource server when one is configured; without
// one, "Invalid token." is the answer (where Meet without a resource server
// answers a misconfiguration message).
//
// The verified-token cache keeps the claims with their kind. A hit re-checks
// the time claims with that kind's leeway: expiry is final, as it is for the
// kind; an iat or nbf in the future again (a clock that went back) is decided
// afresh, as the kinds would. Claims are only cached when no earlier kind
// passed the token on for a reason the clock can change (failImmature), so
// that a cached answer is the answer every kind would give again; a token
// every kind passed on is cached as passedByEveryKind on the same terms.
func (a *Authorizer) kindClaims(token string) (c *claims, deny *Decision, passed bool) {
	now := a.now()
	key, cacheable, c := a.cachedClaims(token, now)
	if c == passedByEveryKind {
		return nil, &denyInvalidToken, true
	}
	if c != nil {
		switch a.kinds[c.kind].v.timeFailure(c, now) {
		case failNone:
			return c, nil, false
		case failExpired:
			return nil, &denyTokenExpired, false
		}
	}
	clockBound := false
	for i := range a.kinds {
		k := &a.kinds[i]
		kc, mc, f := k.v.decode(token, now)
		switch f {
		case failNone:
		case failImmature:
			clockBound = true
			continue
		case failDecode:
			continue
		default:
			return nil, f.deny(), false
		}
		c = k.readClaims(kc, mc, a.scopesPrefix)
		if cacheable != nil && !clockBound {
			a.cacheClaims(cacheable, key, c, k.v, now)
		}
		return c, nil, false
	}
	if cacheable != nil && !clockBound && a.introspector != nil {
		// Every kind failed to decode it for a reason the clock cannot
		// change (signature, algorithm, shape): the resource server's
		// token, which would otherwise be parsed by every kind again on
		// each request before its verdict is read from the cache. Only
		// with a resource server: without one, such a token is refused
		// at no more cost than a cache entry.
		cacheable.Set(key, passedByEveryKind, now, now.Add(maxTokenCacheTTL))
	}
	return nil, &denyInvalidToken, true
}

// passedByEveryKind is the verified-token cache's entry for a token no JWT
// kind decodes (see kindClaims). It is never modified, and never returned
// as claims.
var passedByEveryKind = &claims{}

// methodNotAllowed returns the 405 of a request whose route the policy knows
// the backend routes, but not for this method (MethodPolicy).
func (a *Authorizer) methodNotAllowed(req *Request) (Decision, bool) {
	mp, ok := a.policy.(MethodPolicy)
	if !ok {
		return Decision{}, false
	}
	allow := mp.Allow(req)
	if allow == "" {
		return Decision{}, false
	}
	return Decision{
		Result: Deny,
		Reason: ReasonMethodNotAllowed,
		Status: http.StatusMethodNotAllowed,
		// DRF's MethodNotAllowed, with the method as Django reads it
		// (upper-cased). The policy matched it, so it is an RFC 9110 token.
		Message: `Method "` + upperASCII(req.Method) + `" not allowed.`,
		Allow:   allow,
	}, true
}

// upperASCII upper-cases the ASCII letters of s.
func upperASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'a' <= s[i] && s[i] <= 'z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'a' <= b[j] && b[j] <= 'z' {
					b[j] -= 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// scopeClaim2608 reads the scope claim as Meet's BaseScopePermission reads
// it in 2026.08 (get_token_scopes): a string is split on whitespace, a list
// is taken as is; each scope is lower-cased, duplicates are dropped, and
// "prefix:" is removed from the front of each when a prefix is configured.
// It returns the granted scopes joined by single spaces (the x-auth-scope
// value, and what hasScope searches), whether Meet sees any scope at all
// (set: the normalised list is not empty), and whether the granted scopes
// can be sent as a header value (safe).
//
// Where Meet's own code would fail, gatehouse refuses instead of guessing:
// a list holding a non-string, or a number or true (Meet's .lower() or
// iteration raises, a 500), grants nothing. A dict, whose keys Meet would
// read as scopes, grants nothing either. A list element that is not a
// single word stays in the list (so the claim is set) but grants nothing,
// as no route's scope can equal it. A scope whose lower case Python and Go
// could disagree on (İ, Σ) grants nothing (see lowerScope).
func scopeClaim2608(v any, prefix string) (scope string, set, safe bool) {
	var words []string
	switch s := v.(type) {
	case string:
		if scopeNormal(s, prefix) {
			return s, s != "", HeaderSafe(s) // the usual case: nothing to change, copy nothing
		}
		words = strings.Fields(s)
	case []any:
		words = make([]string, 0, len(s))
		for _, e := range s {
			str, isStr := e.(string)
			if !isStr {
				return "", len(s) > 0, true
			}
			words = append(words, str)
		}
	default:
		return "", pyTruthy(v), true
	}
	set = len(words) > 0
	granted := make([]string, 0, len(words))
	safe = true
	for _, w := range words {
		if !isWord(w) {
			continue
		}
		if !HeaderSafe(w) {
			safe = false
			continue
		}
		lw, ok := lowerScope(w)
		if !ok {
			continue
		}
		if prefix != "" {
			if rest, cut := strings.CutPrefix(lw, prefix); cut && strings.HasPrefix(rest, ":") {
				lw = rest[1:]
			}
		}
		if lw != "" && !slices.Contains(granted, lw) {
			granted = append(granted, lw)
		}
	}
	if !safe {
		return "", set, false
	}
	return strings.Join(granted, " "), set, true
}

// scopeNormal reports whether s is already what scopeClaim2608 makes of a
// string claim: single-space-separated words (isJoinedWords), ASCII without
// upper case letters, no word repeated, and none starting with "prefix:".
func scopeNormal(s, prefix string) bool {
	if !isJoinedWords(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return false
		}
	}
	for rest := s; rest != ""; {
		var w string
		w, rest, _ = strings.Cut(rest, " ")
		if prefix != "" && len(w) > len(prefix) && w[len(prefix)] == ':' && w[:len(prefix)] == prefix {
			return false
		}
		if hasScope(rest, w) {
			return false
		}
	}
	return true
}

// lowerScope lower-cases a scope as Python's str.lower does. ok is false for
// a scope holding İ (U+0130, which Python lowers to two code points and Go
// to one) or Σ (U+03A3, which Python lowers by context, ς at the end of a
// word): gatehouse cannot be sure to read those as Meet does, so they grant
// nothing. Elsewhere Go's lower case mapping is Python's (both follow
// UnicodeData), the Kelvin sign included.
func lowerScope(w string) (lower string, ok bool) {
	upper := false
	for i := 0; i < len(w); i++ {
		c := w[i]
		if c >= 0x80 {
			if strings.ContainsRune(w, '\u0130') || strings.ContainsRune(w, '\u03a3') {
				return "", false
			}
			return strings.ToLower(w), true
		}
		if 'A' <= c && c <= 'Z' {
			upper = true
		}
	}
	if !upper {
		return w, true
	}
	b := []byte(w)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b), true
}
