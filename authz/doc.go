// Package authz is gatehouse's decision core: given the attributes of one HTTP
// request, it decides whether the request may pass and as whom.
//
// It reproduces the application-delegation authentication of La Suite
// numérique's Meet (ApplicationJWTAuthentication): a bearer JWT signed with a
// shared HMAC key, carrying user_id, client_id and delegated=true, whose user
// must exist and be active in the directory.
//
// The package is a pure function of (request attributes, clock, directory): it
// imports neither gRPC nor Redis, so the proxy adapters stay thin and every rule
// can be tested without a network.
//
// Security rationale, in short:
//   - Every path that is not a complete, positive answer is a deny: the zero
//     Decision denies, directory errors become 503 decisions, and the adapters
//     never turn an internal failure into a transport error that a proxy's
//     failure_mode_allow could convert into an allow.
//   - Deny messages are fixed strings that tell an attacker nothing about which
//     check failed beyond what Meet itself says.
//   - Tokens, secrets and claim payloads never appear in errors or logs.
package authz
