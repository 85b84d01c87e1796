// Package oidc checks opaque OIDC access tokens with the identity provider
// that issued them (RFC 7662 token introspection, and its JWT form, RFC
// 9701), as Meet's resource-server authentication does, and caches the
// verdicts in process and across replicas. It implements
// authz.Introspector; the decision core decodes the bearer token (base64)
// before calling it, finds the user by the verdict's sub and applies the
// route's scope rules.
//
// # What Meet does
//
// Meet authenticates these tokens with django-lasuite's
// oidc_resource_server. For each request it POSTs the token to the
// provider's introspection endpoint (form-encoded token, client_id and
// client_secret, that is client_secret_post; Accept application/json, or
// application/token-introspection+jwt in JWT mode; under OIDC_TIMEOUT).
// A provider 401 with a WWW-Authenticate header becomes a 401 whose detail
// is that header's error_description ("no error description in
// www-authenticate" without one); any other HTTP error a 500. The answer
// must then be active, carry the provider's iss, a scope (split on single
// spaces) sharing one of OIDC_RS_SCOPES, the audience claim
// (OIDC_RS_AUDIENCE_CLAIM, by default client_id) and a sub; every failure is
// a SuspiciousOperation. In JWT mode the answer is a JWE (RSA-OAEP /
// A256GCM by default, decrypted with Meet's private key) holding a JWS
// (ES256 by default) verified against the provider's JWKS; the JWT must
// carry iss (the provider), aud (Meet's client id) and a
// token_introspection object, which is then checked as above. Meet caches
// nothing: every request costs a round trip to the provider.
//
// # Where gatehouse differs
//
//   - Values are typed: active must be JSON true (Meet takes any truthy
//     value), scope a string, sub a non-empty string, the audience a
//     non-empty string or list of them (a list is joined with spaces; Meet
//     would send Python's str() of it), exp a number in the future when
//     present. Every failed check is "Login failed" (Meet's
//     SuspiciousOperation mostly ends as a bare 400 or a 500).
//   - Answers are read as Python's json.loads reads them
//     (authz.DecodeJSONObject, shared with token verification). Sub,
//     audience and scope must be valid as header values (a lone surrogate
//     is not) and must not hold U+FFFD: they are forwarded and looked up.
//   - Only a short printable-ASCII error_description is passed on; another
//     one leaves the description empty ("Login failed"). A WWW-Authenticate
//     element Python's parser would crash on is skipped.
//   - Provider trouble (transport error, timeout, redirect, a status other
//     than 200 or 401-with-WWW-Authenticate, an answer over 64 KiB or a JWKS
//     over 1 MiB, a JWKS that cannot be fetched or lacks the answer's key)
//     is an error, which the core answers 503, never an allow.
//   - JWT mode without a decryption key accepts a signed, unencrypted
//     answer (Meet always decrypts); with a key the answer must be
//     encrypted. A plain JSON answer in JWT mode is refused: no downgrade.
//     The JWKS is fetched lazily, cached, refetched when an answer names an
//     unknown kid, at most once every 10 s; keys of another type or
//     algorithm are ignored.
//   - Verdicts are cached (Meet has no cache): see below.
//
// Why github.com/go-jose/go-jose/v4: it is small, has no dependencies, every
// parse function takes an explicit allow-list of algorithms (no algorithm
// confusion: the one configured algorithm is the only one accepted), and it
// does JWE, JWS and JWK in one library.
//
// # Caches
//
// A verdict (active, or a refusal with the provider's description) is
// cached under the SHA-256 of the token, never the token: in process first
// (bounded, Config.CacheSize), then in the shared cache (Redis), then the
// provider is asked. An active verdict is kept until the token's exp, at
// most Config.CacheTTL (60 s); a refusal Config.NegativeCacheTTL (10 s).
// Errors are never cached. The shared value carries its absolute expiry, so
// a replica that reads it never keeps it longer; a malformed shared value
// is a miss and is overwritten, a shared-cache error is a miss. One
// introspection per token is in flight per replica, whatever the number of
// callers, each of which still honours its own deadline. While the
// provider is down, a cached verdict is still served within its TTL.
package oidc
