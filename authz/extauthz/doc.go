// Package extauthz adapts gatehouse's decision core to Envoy's external
// authorization gRPC API (envoy.service.auth.v3.Authorization/Check), as used by
// Envoy's ext_authz HTTP filter, Envoy Gateway, Contour, Istio's CUSTOM
// AuthorizationPolicy and gRPC's xDS ext_authz (A92).
//
// The adapter is two pure mappings around one call: RequestFromCheck turns a
// CheckRequest into an authz.Request, the Decider answers, and the Server turns
// the authz.Decision into a CheckResponse. On a server made by
// Server.NewGRPCServer the first mapping happens on the wire instead:
// package checkwire decodes only what RequestFromCheck would take from the
// CheckRequest, and is fuzzed against it. The last mapping goes straight to
// the wire too: the answer is encoded by hand (encode.go), byte for byte
// what proto.Marshal writes for the CheckResponse Check returns, and is
// fuzzed against that. The Server holds no state besides its
// configuration. What it shares with the forward-auth adapter (identity
// header names, making a deny sendable, the deny headers, the decision log
// line, panic logging) lives in authz/internal/adapter; where the two differ,
// a comment at both places says why.
//
// Security rationale:
//
//   - Fail closed. Every deny, including "could not decide", is a successful RPC
//     whose status is non-OK and whose denied_response carries an explicit HTTP
//     status. A gRPC error would make Envoy apply status_on_error and, with
//     failure_mode_allow, let the request through; so Check never returns one,
//     a panic while deciding becomes a deny (see also UnaryRecoverer), and every
//     string put into the response is made valid UTF-8 beforehand so that
//     marshalling the response cannot fail either. An allow decided after the
//     request's context ended (the proxy's deadline) is replaced by a 503:
//     gRPC does not stop such a late OK from reaching a client whose own
//     timer has not fired yet.
//   - For the same reason the directory-unavailable answer uses denied_response
//     with status 503 and Retry-After, not CheckResponse.error_response: Envoy
//     treats error_response as a failed check and honours failure_mode_allow for
//     it (ext_authz_grpc_impl.cc: "treat it as an error and not denial").
//   - Identity headers are set with OVERWRITE_IF_EXISTS_OR_ADD, which replaces
//     every client-sent copy. Headers the adapter does not set (all three on a
//     public route, the scope header when the token has no scope) are listed in
//     headers_to_remove. A header is never both set and removed: Envoy's
//     ext_authz filter applies headers_to_remove after the header mutations
//     (Filter::onComplete), so that would delete the value just set.
//   - Identity values that are not valid header values (control characters,
//     invalid UTF-8) are refused instead of forwarded, so a claim can never
//     inject a header line upstream.
//   - Logs and dynamic metadata carry ids, reasons and the path without its
//     query string; never the token, the Authorization header or claims.
//   - The Decision's DecisionID (set by the telemetry wrapper) goes to the log
//     line, to dynamic metadata as decision_id and, on denies, to the
//     x-gatehouse-decision-id response header; a replacement decision of the
//     adapter's own (late allow, unsendable identity) keeps it. The
//     traceparent and tracestate request headers are passed on in
//     authz.Request for tracing and play no part in the decision.
package extauthz
