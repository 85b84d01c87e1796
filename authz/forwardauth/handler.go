package forwardauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/textproto"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-authz/gatehouse/authz"
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
	// header values, exactly as the gRPC adapter does.
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
		jsonType:   []string{contentTypeJSON},
		zeroLength: []string{"0"},
	}
	if h.timeout == 0 {
		h.timeout = DefaultTimeout
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	for i, n := range [3]struct{ name, def string }{
		{opts.UserIDHeader, defaultUserHeader},
		{opts.ClientIDHeader, defaultClientHeader},
		{opts.ScopeHeader, defaultScopeHeader},
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

// headerName returns the canonical form of a configured header name.
func headerName(name, def string) (string, error) {
	if name = strings.TrimSpace(name); name == "" {
		return def, nil
	}
	for i := 0; i < len(name); i++ {
		if !isTokenChar(name[i]) {
			return "", fmt.Errorf("forwardauth: identity header name %q is not an HTTP token", name)
		}
	}
	return textproto.CanonicalMIMEHeaderKey(name), nil
}

// isTokenChar reports whether c may appear in an RFC 9110 token.
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
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
		if !set && !contains(names, lower) {
			names = append(names, lower)
		}
	}
	if len(names) == 0 {
		return nil
	}
	return []string{strings.Join(names, ",")}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// ServeHTTP answers one check. See the package comment for the contract.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req, m, problem := original(r, h.prefix)
	var d authz.Decision
	if problem == "" {
		d = h.decide(r.Context(), &req)
	} else {
		d = badRequestDecision
		if rec, ok := h.decider.(authz.Recorder); ok {
			rec.Record(r.Context(), &d)
		}
	}

	allowed := false
	if d.Allowed() {
		if allowed = h.writeAllow(w, &d); !allowed {
			d = replaced(badIdentityDecision, &d)
		}
	}
	if !allowed {
		d = normalizeDeny(d)
		h.writeDeny(w, r, &d)
	}

	if level := d.LogLevel(); h.logs.Enabled(r.Context(), h.log, level) {
		h.logDecision(r, level, m, problem, &req, &d)
	}
}

// decide calls the Decider within the timeout, turning a panic into
// internalDecision.
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
			h.logPanic(ctx, p)
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
	values := [3]string{id.UserID, id.ClientID, id.Scope}
	for _, v := range values {
		if !authz.HeaderSafe(v) {
			return false
		}
	}
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

// writeDeny sends a 401, 403 or 503 with its JSON body (none for HEAD, but
// the same Content-Length). d must have passed normalizeDeny.
func (h *handler) writeDeny(w http.ResponseWriter, r *http.Request, d *authz.Decision) {
	body := d.Body()
	hdr := w.Header()
	hdr[hdrContentType] = h.jsonType
	if c := d.ChallengeHeader(h.realm); c != "" {
		if !authz.HeaderSafe(c) {
			// Only a misconfigured realm or scope name can get here; a bare
			// challenge still tells the client which scheme to use.
			c = "Bearer"
		}
		hdr[hdrWWWAuthenticate] = []string{c}
	}
	if d.Status == http.StatusServiceUnavailable {
		hdr[hdrRetryAfter] = []string{d.RetryAfter()}
	}
	// The decision id lets support find this denial in the decision logs,
	// as the gRPC adapter's x-gatehouse-decision-id does.
	if d.DecisionID != "" && authz.HeaderSafe(d.DecisionID) {
		hdr[hdrDecisionID] = []string{d.DecisionID}
	}
	hdr[hdrContentLength] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(d.Status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// normalizeDeny returns the decision to send for a non-allow: d itself when
// its status is one this handler sends (401, 403, 503), else
// internalDecision keeping d's identity and decision id for the log.
func normalizeDeny(d authz.Decision) authz.Decision {
	if d.Result == authz.Unavailable && d.Status == 0 {
		d.Status = http.StatusServiceUnavailable
	}
	switch d.Status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusServiceUnavailable:
		return d
	}
	return replaced(internalDecision, &d)
}

// replaced returns by, keeping what old's log line needs: identity and
// decision id.
func replaced(by authz.Decision, old *authz.Decision) authz.Decision {
	by.Identity = old.Identity
	by.DecisionID = old.DecisionID
	return by
}

// logDecision writes the one line of a check. It is only called when the line
// is to be written, so that the attributes cost nothing otherwise.
func (h *handler) logDecision(r *http.Request, level slog.Level, m mode, problem string, req *authz.Request, d *authz.Decision) {
	attrs := make([]slog.Attr, 0, 12)
	attrs = append(attrs,
		slog.String("mode", m.String()),
		slog.String("result", d.Result.String()),
		slog.String("reason", string(d.Reason)),
		slog.Int("status", d.Status),
		slog.String("method", req.Method),
		slog.String("path", pathWithoutQuery(req.Path)),
		slog.String("user_id", d.Identity.UserID),
		slog.String("client_id", d.Identity.ClientID),
		slog.String("request_id", r.Header.Get(hdrRequestID)),
	)
	if d.DecisionID != "" {
		attrs = append(attrs, slog.String("decision_id", d.DecisionID))
	}
	if problem != "" {
		attrs = append(attrs,
			slog.String("problem", problem),
			slog.String("check_path", pathWithoutQuery(r.RequestURI)),
		)
	}
	h.log.LogAttrs(r.Context(), level, "forward-auth decision", attrs...)
}

// logPanic logs a recovered panic without request data: runtime errors carry
// none, other values might, so only their type is given.
func (h *handler) logPanic(ctx context.Context, p any) {
	desc := fmt.Sprintf("%T", p)
	if e, ok := p.(runtime.Error); ok {
		desc = e.Error()
	}
	h.log.LogAttrs(ctx, slog.LevelError, "panic recovered; request denied",
		slog.String("where", "Decide"),
		slog.String("panic", desc),
		slog.String("stack", string(debug.Stack())),
	)
}
