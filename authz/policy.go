package authz

// Rule is what a route requires of a request.
type Rule struct {
	// Public routes are allowed without authentication and carry no identity
	// (decision step 0).
	Public bool
	// Scope, when set, must be among the token's scopes (steps 12–13).
	Scope string
	// UnknownAction denies authenticated requests whose method has no mapped
	// action on a protected route (step 14).
	UnknownAction bool
	// Deny refuses every authenticated request (a routes file's
	// "default: deny").
	Deny bool
	// Refuse, when not RefuseNone, refuses the request with a 403 before
	// any credential is looked at: its path or method cannot be judged
	// safely (see RouteTarget). It wins over every other field.
	Refuse Refusal
}

// Policy maps a request to the Rule of its route. Implementations must be safe
// for concurrent use and cheap: Match runs on every request. A Policy that
// matches paths must match the path the backend will see, RouteTarget's, and
// return its refusal rather than guess.
type Policy interface {
	Match(req *Request) Rule
}

// AuthenticateAll is the Policy of an Authorizer given none: every request
// needs authentication and no scope. It looks at no path, so it refuses
// nothing; gatehouse itself always runs a routes table (its "authenticate"
// table when no routes are configured), which refuses what RouteTarget
// refuses.
type AuthenticateAll struct{}

// Match implements Policy.
func (AuthenticateAll) Match(*Request) Rule { return Rule{} }

// MethodPolicy is implemented by Policies that know which methods the
// backend routes on a path. Under the 2026.08 profile, when Match says
// UnknownAction, the Authorizer asks Allow: a route Meet's router serves,
// but not with this method, is answered 405 Method Not Allowed with an Allow
// header (after authentication), as Django REST framework does. Under
// 2025.10 it is not asked: such a method is an unknown action (403).
type MethodPolicy interface {
	Policy
	// Allow returns the Allow header value of req's route (the methods it
	// serves, e.g. "GET, POST, HEAD, OPTIONS") when the route does not
	// serve req's method, and "" otherwise: when it does (OPTIONS, which
	// DRF always serves), or when no route the backend routes matches.
	Allow(req *Request) string
}
