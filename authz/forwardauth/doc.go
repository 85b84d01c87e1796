// Package forwardauth serves gatehouse's decision over plain HTTP, for the
// proxies whose external authorisation speaks HTTP rather than gRPC: Envoy's
// ext_authz http_service, nginx auth_request, ingress-nginx (auth-url),
// Traefik forwardAuth and Caddy forward_auth. What it shares with the gRPC
// adapter (identity header names, making a deny sendable, the deny headers,
// the decision log line, panic logging) lives in authz/internal/adapter;
// where the two differ, a comment at both places says why.
//
// Each request to the handler is one check. The handler finds the original
// request's method, path and host, asks the Decider, and answers:
//
//   - allow: exactly 200, an empty body, and the identity headers
//     X-Auth-User-Id, X-Auth-Client-Id, X-Auth-Scope (names configurable;
//     a header whose value is empty is not sent, and is listed in
//     x-envoy-auth-headers-to-remove so that Envoy deletes a client-sent copy);
//   - deny: 401 or 403 with the JSON body {"detail":"..."}, content-type
//     application/json and the same WWW-Authenticate as the gRPC adapter;
//     under the 2026.08 profile, 405 with an Allow header for a method the
//     route does not serve (403 in the X-Original-* mode: nginx turns any
//     status but 401 and 403 into a 500);
//   - could not decide (directory down, internal error): 503 with
//     Retry-After. A 5xx is an error to every supported proxy, so the proxy's
//     failure setting applies; all the examples fail closed.
//
// No other status is ever sent, and never a redirect. A HEAD check gets the
// headers of the GET answer without the body. /healthz, /readyz and /metrics
// are not special here: they are checks like any other path (and, under the
// default prefix, malformed ones); the ops listener serves them.
//
// Serve the handler as the http.Server's Handler on its own listener, not
// under an http.ServeMux: a mux cleans paths and answers some with redirects
// or 404s, and would make "/check/../healthz" something other than a check.
//
// # Where the original request comes from
//
// Proxies describe the request being authorised in one of three ways. The
// handler tells them apart by the path of the check request, relative to the
// configured prefix P (default /check):
//
//  1. Path strictly under P (P + "/..."): Envoy http_service. Envoy sends the
//     original method, appends the original path and query to path_prefix, and
//     keeps the original Host. The original request is the check request
//     itself with P stripped. In this mode the headers below must be absent:
//     Envoy never sets them, so when one is present either a client sent it
//     and allowed_headers let it through, or a header-mode proxy was pointed
//     at P + "/" by mistake; both are refused (403).
//  2. Path exactly P, with X-Original-URI or X-Original-URL: nginx auth_request
//     and ingress-nginx. Method from X-Original-Method, path and query from
//     X-Original-URI, else from the request target of X-Original-URL; host
//     from X-Original-URL, else the Host header. When both X-Original-URI and
//     X-Original-URL are sent, the URL's request target must equal the URI.
//  3. Path exactly P, with X-Forwarded-Uri: Traefik forwardAuth and Caddy
//     forward_auth (or its written-out reverse_proxy form). Method from X-Forwarded-Method, path and query from
//     X-Forwarded-Uri, host from X-Forwarded-Host, else the Host header.
//     X-Forwarded-Proto is accepted and ignored: no decision depends on the
//     scheme.
//
// Anything else is refused with 403 "Insufficient permissions." and the
// reason bad_request in the log line: a path outside P; path P without
// forwarding headers; X-Original-* and X-Forwarded-Method/Uri together; a
// method or URI header missing, empty or repeated; a URI that does not start
// with "/"; an X-Original-URL whose authority is followed by anything but "/"
// (nginx accepts "Host: a?b", so $scheme://$http_host$request_uri can read
// "http://a?b/rooms/", which a lenient URL parser would take for the path "");
// and in Envoy mode an original path starting with "//", the signature of a
// path_prefix configured with a trailing slash.
//
// Why the request path decides, and not "headers win when present": in Envoy
// mode the request line is written by Envoy and is the truth, while headers
// may come from the client (Envoy forwards any header allowed_headers
// matches); in the header modes the request line is a fixed URI chosen by
// the operator and the headers are written by the proxy. Letting headers
// override the request line would let a client behind a permissive
// http_service choose the path that is authorised; letting the request line
// win in the header modes would authorise "/" for every request. Splitting on
// "exactly P" versus "under P/" makes each mode unambiguous and refuses
// mixtures instead of guessing. With P = "/" (Envoy without path_prefix),
// every path is Envoy mode and the header modes are unavailable.
//
// # Security rationale
//
//   - The forwarding headers are trusted, so they must come from the proxy,
//     never from the client. Every example configuration sets them
//     explicitly (replacing client copies) and clears the other mode's
//     headers; the handler additionally refuses repeated or mixed headers.
//   - Likewise for the identity headers going upstream: the examples make the
//     proxy overwrite or delete client-sent X-Auth-* headers whether or not
//     the allow carries them. (Caddy's forward_auth copy_headers does not, in
//     many versions, when the answer lacks a header; the Caddy example is
//     written out as a reverse_proxy that deletes them first.)
//   - Fail closed: an unknown decision shape, a panic in the Decider or a
//     timeout becomes a 503, never an allow; allows are exactly 200 because
//     Envoy's http_service treats any other status as a deny.
//   - Identity values that are not valid header values (control characters,
//     invalid UTF-8) are refused with 401 "Invalid token claims.", exactly as
//     the gRPC adapter does, so a claim can never split a header upstream.
//   - The original method and path are passed to the decision core as
//     received; the core judges them as the backend will see them (path
//     percent-decoded once, method upper-cased, undecidable paths refused:
//     authz.RouteTarget), in one place shared with the gRPC adapter so that
//     the two cannot diverge. "OPTIONS *" is not a check and is refused (the
//     server turns off net/http's own answer to it).
//   - The Authorization header is read as sent; several copies are joined with
//     "," so that a duplicated header never validates as one credential.
//   - Log lines carry the mode, result, reason, status, method, path without
//     its query string, user and client ids, the request id and the decision
//     id; never the token, the Authorization header or the query string.
//     The W3C traceparent/tracestate headers are passed on for tracing only.
package forwardauth
