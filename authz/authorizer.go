package authz

import (
	"context"
	"time"

	"github.com/gatehouse-authz/gatehouse/userstore"
)

// Options configures an Authorizer.
type Options struct {
	// JWT configures token verification (required).
	JWT JWTConfig
	// Directory answers user (and application) lookups (required). Put a
	// userstore cache in front of slow directories.
	Directory userstore.Directory
	// Policy says what each route requires; nil means every request needs
	// authentication and no scope.
	Policy Policy
	// UserIDFormat says how user_id claims are normalised before lookup.
	UserIDFormat IDFormat
	// CheckApplications turns on step 9: the token's client_id must be an
	// active application in the directory.
	CheckApplications bool
	// TokenCacheSize bounds the verified-token cache (0: DefaultTokenCacheSize,
	// negative: no cache).
	TokenCacheSize int
	// RetryAfter is the Retry-After sent when the directory cannot answer
	// (0: 1 second).
	RetryAfter time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Authorizer decides requests. It is safe for concurrent use.
type Authorizer struct {
	opts Options
}

// New returns an Authorizer, or an error naming the first invalid option
// (the error never contains the secret).
func New(opts Options) (*Authorizer, error) {
	panic("not implemented")
}

// Decide returns the decision for req. It never panics on hostile input and
// never returns an allow unless every check passed; ctx bounds directory
// lookups.
func (a *Authorizer) Decide(ctx context.Context, req *Request) Decision {
	panic("not implemented")
}
