package forwardauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/authz/internal/adapter"
	"github.com/gatehouse-authz/gatehouse/internal/logbudget"
)

// DefaultTimeout bounds one decision when Options.Timeout is zero.
const DefaultTimeout = time.Second

// Decider is authz.Decider. A Decider that is also an authz.Recorder (as
// gatehouse's instrumented Decider is) is told about every check the handler
// refuses without asking it (reason bad_request), so that those are counted
// and get a decision id too.
type Decider = authz.Decider

// Options configures the handler. The zero value is usable.
type Options struct {
	// PathPrefix is the prefix P of check requests ("" selects
	// DefaultPathPrefix, "/check"). Envoy http_service must use it as its
	// path_prefix, without a trailing slash; the header-mode proxies send
	// their checks to exactly P. See CleanPathPrefix for what is accepted;
	// New panics on a prefix CleanPathPrefix refuses.
	PathPrefix string
	// Realm is the optional realm of WWW-Authenticate challenges.
	Realm string
	// UserIDHeader, ClientIDHeader and ScopeHeader name the identity
	// response headers ("" selects X-Auth-User-Id, X-Auth-Client-Id,
	// X-Auth-Scope). New panics on a name that is not an HTTP token.
	UserIDHeader, ClientIDHeader, ScopeHeader string
	// Logger receives one line per decision (nil discards), at the
	// decision's level (authz.Decision.LogLevel): allows at Debug, denies at
	// Info, 503s at Warn. Lines carry mode, result, reason, status, method,
	// path without query, user and client ids, the request id and the
	// decision id; never the token, the Authorization header or the query
	// string.
	Logger *slog.Logger
	// LogLinesPerSecond caps the decision lines written per second when the
	// Logger is not at Debug (0: logbudget.DefaultPerSecond; negative: none),
	// so that a flood of bad tokens costs a few lines and a count.
	LogLinesPerSecond int
	// Timeout bounds one decision, directory lookups included: past it the
	// answer is 503 with Retry-After, which every example proxy turns into
	// an error (0 selects DefaultTimeout, 1s; negative: only the check
	// request's own context bounds it). Keep it below the proxy's timeout for
	// the check (Envoy http_service: 200ms unless configured) so that the
	// proxy gets gatehouse's answer rather than its own timeout error.
	Timeout time.Duration
}

// Decisions the handler makes itself.
var (
	// badRequestDecision answers a check whose original request cannot be
	// established (see the package comment). It is a 403 without challenge:
	// no credential would help.
	badRequestDecision = authz.Decision{
		Result:  authz.Deny,
		Reason:  authz.ReasonBadRequest,
		Status:  http.StatusForbidden,
		Message: "Insufficient permissions.",
	}
	// internalDecision answers when deciding failed (a panic) or the
	// Decision cannot be expressed with the statuses this handler sends.
	internalDecision = authz.InternalError()
	// badIdentityDecision answers an allow whose identity cannot be sent as
	// header values (adapter.IdentitySendable), exactly as the gRPC adapter
	// does.
	badIdentityDecision = authz.InvalidClaims()
)

// handler is the http.Handler New returns. It is immutable after New.
type handler struct {
	decider Decider
	prefix  string
	realm   string
	timeout time.Duration
	log     *slog.Logger
	logs    *logbudget.Budget
	// names are the canonical identity header names: user, client, scope.
	names [3]string
	// remove holds, for each set of absent identity values (bit i: names[i]
	// has no value), the x-envoy-auth-headers-to-remove value; nil when
	// nothing is to be removed.
	remove [8][]string
	// jsonType is the content-type value of every deny; zeroLength the
	// content-length of every allow (net/http omits it on HEAD otherwise).
	jsonType, zeroLength []string
}

// New returns the forward-auth handler asking d for decisions. It panics on
// an invalid PathPrefix or identity header name, like http.ServeMux does on
// an invalid pattern: validate configuration first with CleanPathPrefix.
func New(d Decider, opts Options) http.Handler {
	if d == nil {
		panic("forwardauth: nil Decider")
	}
	prefix, err := CleanPathPrefix(opts.PathPrefix)
	if err != nil {
		panic(err)
	}
	h := &handler{
		decider:    d,
		prefix:     prefix,
		realm:      opts.Realm,
		timeout:    opts.Timeout,
		log:        opts.Logger,
		logs:       logbudget.New(opts.LogLinesPerSecond),
		jsonType:   []string{adapter.ContentTypeJSON},
		zeroLength: []string{"0"},
	}
	if h.timeout == 0 {
		h.timeout = DefaultTimeout
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	for i, n := range [3]struct{ name, def string }{
		{opts.UserIDHeader, adapter.DefaultUserIDHeader},
		{opts.ClientIDHeader, adapter.DefaultClientIDHeader},
		{opts.ScopeHeader, adapter.DefaultScopeHeader},
	} {
		name, err := headerName(n.name, n.def)
		if err != nil {
			panic(err)
		}
		h.names[i] = name
	}
	for absent := range len(h.remove) {
		h.remove[absent] = h.removeList(absent)
	}
	return h
}

// headerName returns a configured identity header name (adapter.HeaderName)
// in canonical form, the key net/http's header map uses: the handler writes
// the map directly. extauthz lower-cases instead, because Envoy matches
// lower-case names.
func headerName(name, def string) (string, error) {
	name, err := adapter.HeaderName(name, def)
	if err != nil {
		return "", fmt.Errorf("forwardauth: %w", err)
	}
	return textproto.CanonicalMIMEHeaderKey(name), nil
}

// removeList builds the x-envoy-auth-headers-to-remove value for a set of
// absent identity values. A name is never both set and removed (Envoy
// removes after setting), which matters when two identity headers share a
// name.
func (h *handler) removeList(absent int) []string {
	var names []string
	for i, n := range h.names {
		if absent&(1<<i) == 0 {
			continue
		}
		set := false
		for j, m := range h.names {
			if absent&(1<<j) == 0 && strings.EqualFold(n, m) {
				set = true
			}
		}
		lower := strings.ToLower(n)
		if !set && !slices.Contains(names, lower) {
			names = append(names, lower)
		}
	}
	if len(names) == 0 {
		return nil
	}
	return []string{strings.Join(names, ",")}
}

// ServeHTTP answers one check. See the package comment for the contract.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req, m, problem := original(r, h.prefix)
	var d authz.Decision
	if problem == "" {
		d = h.decide(r.Context(), &req)
	} else {
		d = badRequestDecision
		adapter.Record(r.Context(), h.decider, &d)
	}

	allowed := false
	if d.Allowed() {
		if allowed = h.writeAllow(w, &d); !allowed {
			d = adapter.Replace(d, badIdentityDecision)
		}
	}
	if !allowed {
		d = normalizeDeny(d, m)
		h.writeDeny(w, r, &d)
	}

	if level := d.LogLevel(); h.logs.Enabled(r.Context(), h.log, level) {
		h.logDecision(r, level, m, problem, &req, &d)
	}
}

// decide calls the Decider within the timeout, turning a panic into
// internalDecision. Unlike extauthz's, it passes http.ErrAbortHandler on:
// that panic is net/http's way to abort a response, and net/http recovers
// it by dropping the connection, so the proxy gets no answer and its failure
// setting applies (all the examples fail closed). gRPC has no such panic.
func (h *handler) decide(ctx context.Context, req *authz.Request) (d authz.Decision) {
	if h.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.timeout)
		defer cancel()
	}
	defer func() {
		if p := recover(); p != nil {
			if errors.Is(asError(p), http.ErrAbortHandler) {
				panic(p)
			}
			adapter.LogPanic(ctx, h.log, "Decide", p)
			d = internalDecision
		}
	}()
	return h.decider.Decide(ctx, req)
}

// asError returns p as an error, or nil.
func asError(p any) error {
	err, _ := p.(error)
	return err
}

// writeAllow sends the 200 of an allow. It reports false, having written
// nothing, when an identity value cannot be sent as a header value.
func (h *handler) writeAllow(w http.ResponseWriter, d *authz.Decision) bool {
	id := &d.Identity
	if !adapter.IdentitySendable(id) {
		return false
	}
	values := [3]string{id.UserID, id.ClientID, id.Scope}
	hdr := w.Header()
	// One allocation holds the three header values; each header gets a
	// full slice of one element, so an append elsewhere cannot overwrite
	// its neighbour.
	var store *[3]string
	absent := 0
	for i, v := range values {
		if v == "" {
			absent |= 1 << i
			continue
		}
		if store == nil {
			store = new([3]string)
		}
		store[i] = v
		hdr[h.names[i]] = store[i : i+1 : i+1]
	}
	if rm := h.remove[absent]; rm != nil {
		hdr[hdrEnvoyAuthRemove] = rm
	}
	hdr[hdrContentLength] = h.zeroLength
	w.WriteHeader(http.StatusOK)
	return true
}

// writeDeny sends a 401, 403, 405 or 503 with its JSON body (none for HEAD, but
// the same Content-Length). d must have passed normalizeDeny.
func (h *handler) writeDeny(w http.ResponseWriter, r *http.Request, d *authz.Decision) {
	body := d.Body()
	hdr := w.Header()
	hdr[hdrContentType] = h.jsonType
	dh := adapter.DenyHeadersOf(d, h.realm)
	if dh.Challenge != "" {
		hdr[hdrWWWAuthenticate] = []string{dh.Challenge}
	}
	if dh.RetryAfter != "" {
		hdr[hdrRetryAfter] = []string{dh.RetryAfter}
	}
	if dh.DecisionID != "" {
		hdr[hdrDecisionID] = []string{dh.DecisionID}
	}
	if dh.Allow != "" {
		hdr[hdrAllow] = []string{dh.Allow}
	}
	hdr[hdrContentLength] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(d.Status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// normalizeDeny returns the decision to send for a non-allow, the original
// request having been described in mode m: d itself when its status is one
// this handler sends, else internalDecision keeping d's identity and decision
// id (adapter.NormalizeDeny). It differs from extauthz's on purpose: only
// 401, 403, 405 and 503 are sent, the statuses the forward-auth proxies read
// alike, where Envoy's gRPC denied_response sends any 4xx or 5xx to the
// client as is. nginx auth_request (X-Original-* mode) allows on any 2xx and
// turns statuses other than 401 and 403 into a 500, so there a 405 (a
// method the route does not serve, 2026.08 profile) is sent as a 403 with
// the same detail: still a refusal, without a server error for the client.
// Strings are not made valid UTF-8 here, as they are for gRPC's proto3
// fields: the body goes through json.Marshal and the challenge through
// authz.HeaderSafe.
func normalizeDeny(d authz.Decision, m mode) authz.Decision {
	if d.Status == http.StatusMethodNotAllowed && m == modeOriginal {
		d.Status = http.StatusForbidden
	}
	return adapter.NormalizeDeny(d, sendable)
}

// sendable reports whether a deny may have status: 401, 403, 405 or 503.
func sendable(status int) bool {
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusMethodNotAllowed, http.StatusServiceUnavailable:
		return true
	}
	return false
}

// logDecision writes the one line of a check: the mode, the attributes both
// adapters log (adapter.DecisionAttrs) and, for a refused check, the problem
// and the check's own path. It is only called when the line is to be
// written, so that the attributes cost nothing otherwise.
func (h *handler) logDecision(r *http.Request, level slog.Level, m mode, problem string, req *authz.Request, d *authz.Decision) {
	var buf [12]slog.Attr
	attrs := append(buf[:0], slog.String("mode", m.String()))
	attrs = adapter.DecisionAttrs(attrs, req, d, r.Header.Get(hdrRequestID))
	if problem != "" {
		attrs = append(attrs,
			slog.String("problem", problem),
			slog.String("check_path", adapter.PathWithoutQuery(r.RequestURI)),
		)
	}
	h.log.LogAttrs(r.Context(), level, "forward-auth decision", attrs...)
}
