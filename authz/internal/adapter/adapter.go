// Package adapter holds what gatehouse's two proxy adapters share: extauthz
// (Envoy's gRPC Check) and forwardauth (HTTP forward auth for Envoy's
// http_service, nginx, Traefik and Caddy). It is the one home of the rules
// that must read the same whichever protocol carried the check:
//
//   - the identity header names: defaults, trimming, the RFC 9110 token rule
//     (HeaderName);
//   - how a deny is made sendable (NormalizeDeny), how an adapter's own
//     answer replaces a decision (Replace), and which headers a deny carries
//     (DenyHeadersOf);
//   - which identity can go upstream (IdentitySendable);
//   - telling the Decider about checks refused without asking it (Record);
//   - the decision log line's attributes (DecisionAttrs, PathWithoutQuery)
//     and the log line of a recovered panic (LogPanic).
//
// Where the adapters must differ (the case of header names, the statuses a
// deny may have, which panics are passed on), the difference is a parameter
// or stays in the adapter, with a comment at both places saying why.
//
// The package depends on the decision core (authz) and nothing of the
// protocols; the core never imports it.
package adapter

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/gatehouse-authz/gatehouse/authz"
)

// Default identity header names (docs/design.md#identity-headers), lower
// case. forwardauth sends them in canonical form (X-Auth-User-Id), which
// HTTP treats as the same names.
const (
	DefaultUserIDHeader   = "x-auth-user-id"
	DefaultClientIDHeader = "x-auth-client-id"
	DefaultScopeHeader    = "x-auth-scope"
)

// ContentTypeJSON is the content type of every deny body (authz.Decision.Body).
const ContentTypeJSON = "application/json"

// HeaderName returns the identity header name configured as name, with
// surrounding space trimmed; "" selects def. A name that is not an RFC 9110
// token is an error: sent upstream, it would break the header block or be
// dropped by the proxy.
//
// The case is left to the caller, because the adapters must differ there:
// extauthz lower-cases (Envoy's header keys are lower case), forwardauth
// canonicalises (it writes http.Header's map directly).
func HeaderName(name, def string) (string, error) {
	if name = strings.TrimSpace(name); name == "" {
		return def, nil
	}
	if !authz.IsToken(name) {
		return "", fmt.Errorf("identity header name %q is not an HTTP token", name)
	}
	return name, nil
}

// Record tells decider about d when it is an authz.Recorder: d is a decision
// the adapter made without asking it (a check it could not read), which must
// still be counted and get a decision id.
func Record(ctx context.Context, decider authz.Decider, d *authz.Decision) {
	if rec, ok := decider.(authz.Recorder); ok {
		rec.Record(ctx, d)
	}
}

// Replace returns with, keeping what d learnt of the caller and its decision
// id: an adapter's own answer (internal error, late allow, unsendable
// identity) replaces the decision's outcome, not its place in logs and
// traces.
func Replace(d, with authz.Decision) authz.Decision {
	with.Identity = d.Identity
	with.DecisionID = d.DecisionID
	return with
}

// NormalizeDeny returns the decision to send for a non-allow d: d itself,
// an Unavailable without status getting 503, when sendable accepts its
// status; else authz.InternalError() keeping d's identity and decision id
// (Replace). sendable is the adapter's: the statuses a deny may have differ
// with what the proxy does with them (see each adapter's normalizeDeny).
func NormalizeDeny(d authz.Decision, sendable func(status int) bool) authz.Decision {
	if d.Result == authz.Unavailable && d.Status == 0 {
		d.Status = http.StatusServiceUnavailable
	}
	if !sendable(d.Status) {
		return Replace(d, authz.InternalError())
	}
	return d
}

// IdentitySendable reports whether every identity value can be sent as a
// header value (authz.HeaderSafe). An allow whose identity cannot is
// answered with authz.InvalidClaims(): forwarding such a value could split a
// header line upstream, dropping it would forward an unidentified request.
func IdentitySendable(id *authz.Identity) bool {
	return authz.HeaderSafe(id.UserID) && authz.HeaderSafe(id.ClientID) && authz.HeaderSafe(id.Scope)
}

// DenyHeaders are the values of the headers every deny carries besides its
// content type; "" means the header is not sent.
type DenyHeaders struct {
	// Challenge is WWW-Authenticate (401s, and 403s about scope).
	Challenge string
	// RetryAfter is Retry-After (503s).
	RetryAfter string
	// DecisionID is authz.DecisionIDHeader, so that a refused client can
	// quote the decision to support.
	DecisionID string
	// Allow is Allow (405s: the methods the route serves).
	Allow string
}

// DenyHeadersOf returns the headers of deny d (which has passed
// NormalizeDeny), realm being the optional challenge realm. A challenge that
// cannot be a header value, which only a misconfigured realm or scope name
// can cause, becomes a bare "Bearer": it still tells the client which scheme
// to use. A decision id that cannot be a header value is not sent.
func DenyHeadersOf(d *authz.Decision, realm string) DenyHeaders {
	var h DenyHeaders
	if h.Challenge = d.ChallengeHeader(realm); h.Challenge != "" && !authz.HeaderSafe(h.Challenge) {
		h.Challenge = "Bearer"
	}
	if d.Status == http.StatusServiceUnavailable {
		h.RetryAfter = d.RetryAfter()
	}
	if authz.HeaderSafe(d.DecisionID) {
		h.DecisionID = d.DecisionID
	}
	if d.Status == http.StatusMethodNotAllowed && authz.HeaderSafe(d.Allow) {
		h.Allow = d.Allow
	}
	return h
}

// PathWithoutQuery strips the query string and fragment from a request
// target for logs: they may carry secrets (tokens in query parameters).
func PathWithoutQuery(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		return p[:i]
	}
	return p
}

// DecisionAttrs appends to attrs the attributes every decision line has, in
// both adapters: result, reason, status, method, path without its query,
// user and client ids, requestID and the decision id. Never the token, the
// Authorization header or claims.
func DecisionAttrs(attrs []slog.Attr, req *authz.Request, d *authz.Decision, requestID string) []slog.Attr {
	return append(attrs,
		slog.String("result", d.Result.String()),
		slog.String("reason", string(d.Reason)),
		slog.Int("status", d.Status),
		slog.String("method", req.Method),
		slog.String("path", PathWithoutQuery(req.Path)),
		slog.String("user_id", d.Identity.UserID),
		slog.String("client_id", d.Identity.ClientID),
		slog.String("request_id", requestID),
		slog.String("decision_id", d.DecisionID),
	)
}

// LogPanic logs a recovered panic at Error with where it happened, what it
// was and the stack, never the request or the panic value, which may embed
// request data (a formatted message with a header in it). Only a runtime
// error's message is given (nil dereference, index out of range: no request
// data); of other values, only their type.
func LogPanic(ctx context.Context, logger *slog.Logger, where string, p any) {
	logger.LogAttrs(ctx, slog.LevelError, "panic recovered; request denied",
		slog.String("where", where),
		slog.String("panic", DescribePanic(p)),
		slog.String("stack", string(debug.Stack())),
	)
}

// DescribePanic names a panic value without printing it (see LogPanic).
func DescribePanic(p any) string {
	if e, ok := p.(runtime.Error); ok {
		return e.Error()
	}
	return fmt.Sprintf("%T", p)
}
