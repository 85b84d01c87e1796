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
}

// Policy maps a request to the Rule of its route. Implementations must be safe
// for concurrent use and cheap: Match runs on every request.
type Policy interface {
	Match(req *Request) Rule
}

// AuthenticateAll is the Policy used when no routes are configured: every
// request needs authentication and no scope.
type AuthenticateAll struct{}

// Match implements Policy.
func (AuthenticateAll) Match(*Request) Rule { return Rule{} }
