package authz

import (
	"context"
	"time"
)

// Introspector checks an opaque OIDC access token with the identity provider
// that issued it (RFC 7662 token introspection), the way Meet's resource
// server does (docs/oidc.md). authz/oidc implements it, with the caches.
type Introspector interface {
	// Introspect returns the provider's checked verdict on token. An error
	// means no verdict could be had (the provider down, slow, or answering
	// something that is neither an introspection nor a 401): the request is
	// answered 503, never allowed. Errors never contain the token.
	Introspect(ctx context.Context, token string) (Introspection, error)
}

// Introspection is the verdict on one token, after every check Meet's
// resource server makes of the provider's answer (active, iss, scope shared
// with the required scopes, the audience claim, sub).
type Introspection struct {
	// Active is true only when the provider vouched for the token and every
	// check passed. Every field below is empty when it is false, except
	// Description.
	Active bool
	// Description is, on a refusal, the error_description of the provider's
	// 401 (Meet sends it as the detail); empty for every other refusal,
	// which is answered "Login failed".
	Description string
	// Sub is the subject, Meet's meet_user.sub.
	Sub string
	// Audience is the audience claim's value (by default client_id): the
	// application acting on the user's behalf, sent upstream as the client
	// id. A list of strings is joined with single spaces.
	Audience string
	// Scope is the scope claim as the provider wrote it (space-separated);
	// the decision core normalises it as it does a token's.
	Scope string
	// Expiry is the token's exp (zero when the answer had none).
	Expiry time.Time
}
