package authz

import (
	"context"
	"encoding/base64"
	"net/http"
	"unicode/utf8"

	"github.com/gatehouse-authz/gatehouse/userstore"
)

// This file is the last token kind of the 2026.08 profile: OIDC access
// tokens of Meet's identity provider, which Meet's resource server (La
// Suite's ResourceServerAuthentication) does not decode but sends to the
// provider's introspection endpoint (docs/oidc.md). The provider's answer
// and its checks are the Introspector's; what follows them — the user found
// by sub, its status, the route's scope — is decided here.

// Deny and 503 decisions of the resource-server kind.
var (
	// denyLoginFailed is every refusal of the provider's answer (Meet lets
	// most of them escape as a SuspiciousOperation, a bare 400; see
	// docs/oidc.md#differences-from-meet).
	denyLoginFailed = unauthorized(ReasonLoginFailed, ChallengeInvalidToken, "Login failed")
	// denyNoSubject: the provider vouched for a subject no user has.
	denyNoSubject = unauthorized(ReasonUserNotFound, ChallengeInvalidToken,
		"Login failed: No user found for the given access token.")
)

// decideIntrospected decides a request whose bearer token no JWT kind
// decoded, by introspection.
func (a *Authorizer) decideIntrospected(ctx context.Context, req *Request, rule Rule, token string) Decision {
	v, err := a.introspector.Introspect(ctx, resourceServerToken(token))
	if err != nil {
		return Decision{
			Result:            Unavailable,
			Reason:            ReasonProviderUnavailable,
			Status:            http.StatusServiceUnavailable,
			Message:           "Service temporarily unavailable.",
			RetryAfterSeconds: a.retryAfter,
		}
	}
	if !v.Active {
		if v.Description != "" && HeaderSafe(v.Description) {
			// The provider's own 401 description, as Meet relays it.
			return unauthorized(ReasonLoginFailed, ChallengeInvalidToken, v.Description)
		}
		return denyLoginFailed
	}
	c := &claims{}
	scope, set, safe := scopeClaim2608(v.Scope, a.scopesPrefix)
	c.scopeSet = set
	if safe {
		c.scope = scope
	}
	id := Identity{ClientID: v.Audience, Scope: c.scope}
	if !HeaderSafe(v.Audience) || !HeaderSafe(v.Sub) {
		// The Introspector checks both; an answer that cannot be sent
		// upstream is refused here too rather than trusted.
		return denyLoginFailed
	}
	userID, found, err := a.subjects.UserBySub(ctx, v.Sub)
	if err != nil {
		return a.unavailable(id)
	}
	if !found {
		return withIdentity(denyNoSubject, id)
	}
	if userID, found = a.verifier.normalizeUserID(userID); !found {
		// The index names an id the directory could not hold: no such user.
		return withIdentity(denyNoSubject, id)
	}
	id.UserID = userID
	if d, done := a.lookup(ctx, userstore.User, userID, id); done {
		return d
	}
	if !safe {
		return withIdentity(denyInvalidClaims, id)
	}
	return a.permit(req, rule, c, id)
}

// resourceServerToken is the token Meet's resource server introspects: the
// bearer token, or, when it is valid standard base64 of UTF-8 text, that
// text (some service providers base64-encode their tokens). "Valid" is
// Python's base64.b64decode(token, validate=True), binascii's strict mode:
// the standard alphabet, then only "=" — none first; after a multiple of 4
// data characters any number of them, after 2 mod 4 exactly two, after 3
// mod 4 exactly one; bits left over in the last character are ignored.
func resourceServerToken(token string) string {
	n := len(token)
	for n > 0 && token[n-1] == '=' {
		n--
	}
	data, pads := token[:n], len(token)-n
	if data == "" {
		return token // leading padding
	}
	for i := 0; i < len(data); i++ {
		if !isStdBase64(data[i]) {
			return token
		}
	}
	switch len(data) % 4 {
	case 1:
		return token
	case 2:
		if pads != 2 {
			return token
		}
	case 3:
		if pads != 1 {
			return token
		}
	}
	text, err := base64.RawStdEncoding.DecodeString(data)
	if err != nil || !utf8.Valid(text) {
		return token
	}
	return string(text)
}

func isStdBase64(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/'
}
