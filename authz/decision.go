package authz

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
)

// Result is the outcome class of a decision.
type Result uint8

const (
	// Deny is the zero value, so a Decision that was never filled in denies.
	Deny Result = iota
	// Allow lets the request through.
	Allow
	// Unavailable means gatehouse could not decide (the directory did not
	// answer). It is a deny with status 503 and a Retry-After.
	Unavailable
)

// String returns "deny", "allow" or "unavailable" (metric and log label).
func (r Result) String() string {
	switch r {
	case Allow:
		return "allow"
	case Unavailable:
		return "unavailable"
	default:
		return "deny"
	}
}

// Reason is a stable, machine-readable code for a decision, used in logs,
// metrics and Envoy dynamic metadata. It never carries request data.
type Reason string

// Reasons, one per row of the decision table.
const (
	ReasonPublic              Reason = "public"
	ReasonAllowed             Reason = "allowed"
	ReasonMissingCredentials  Reason = "missing_credentials"
	ReasonInvalidHeader       Reason = "invalid_header"
	ReasonInvalidEncoding     Reason = "invalid_encoding"
	ReasonTokenExpired        Reason = "token_expired"
	ReasonInvalidToken        Reason = "invalid_token"
	ReasonInvalidClaims       Reason = "invalid_claims"
	ReasonInvalidTokenType    Reason = "invalid_token_type"
	ReasonApplicationNotFound Reason = "application_not_found"
	ReasonApplicationDisabled Reason = "application_disabled"
	ReasonUserNotFound        Reason = "user_not_found"
	ReasonUserDisabled        Reason = "user_disabled"
	ReasonNoScope             Reason = "no_scope"
	ReasonMissingScope        Reason = "missing_scope"
	ReasonUnknownAction       Reason = "unknown_action"
	ReasonRouteDenied         Reason = "route_denied"
	ReasonMethodNotAllowed    Reason = "method_not_allowed" // 405, 2026.08 profile only
	ReasonDirectoryError      Reason = "directory_unavailable"
	ReasonLoginFailed         Reason = "login_failed"         // OIDC access token refused (docs/oidc.md)
	ReasonProviderUnavailable Reason = "provider_unavailable" // OIDC provider did not answer
	ReasonBadRequest          Reason = "bad_request"
	ReasonInternalError       Reason = "internal_error"
)

// Reasons returns every Reason the decision core can give, in table order
// (a fresh slice). Metrics pre-create one series per reason from it.
func Reasons() []Reason {
	return []Reason{
		ReasonPublic, ReasonAllowed, ReasonMissingCredentials, ReasonInvalidHeader,
		ReasonInvalidEncoding, ReasonTokenExpired, ReasonInvalidToken, ReasonInvalidClaims,
		ReasonInvalidTokenType, ReasonApplicationNotFound, ReasonApplicationDisabled,
		ReasonUserNotFound, ReasonUserDisabled, ReasonNoScope, ReasonMissingScope,
		ReasonUnknownAction, ReasonRouteDenied, ReasonMethodNotAllowed, ReasonDirectoryError,
		ReasonLoginFailed, ReasonProviderUnavailable, ReasonBadRequest, ReasonInternalError,
	}
}

// Challenge is the RFC 6750 error code carried by WWW-Authenticate.
type Challenge string

// Challenge codes. ChallengeNone still sends "Bearer" (missing credentials).
const (
	ChallengeNone              Challenge = ""
	ChallengeInvalidRequest    Challenge = "invalid_request"
	ChallengeInvalidToken      Challenge = "invalid_token"
	ChallengeInsufficientScope Challenge = "insufficient_scope"
)

// Identity is who the request acts as once authenticated.
type Identity struct {
	UserID   string
	ClientID string
	// Scope is the token's scopes, space-separated ("" when none).
	Scope string
}

// DecisionIDHeader is the response header that carries Decision.DecisionID
// on every deny, in every adapter, so that a client can quote it to support.
const DecisionIDHeader = "x-gatehouse-decision-id"

// Decision is the answer for one request. Adapters translate it to their
// protocol; they must send a deny for every Result other than Allow.
type Decision struct {
	Result Result
	Reason Reason
	// Status is the HTTP status for the client: 200 on allow, 401/403 on deny
	// (405 for a method the route does not serve, 2026.08 profile only), 503
	// when unavailable.
	Status int
	// Message is the exact detail text of a deny (Meet's wording).
	Message string
	// Challenge is the WWW-Authenticate error code (401s and scope 403s).
	Challenge Challenge
	// Scope is the scope a 403 insufficient_scope challenge names.
	Scope string
	// Identity is set on an authenticated allow, and carries whatever was
	// learnt of the caller on some denies (user/client ids for access logs).
	Identity Identity
	// RetryAfterSeconds is sent as Retry-After on Unavailable.
	RetryAfterSeconds int
	// Allow is the Allow header of a 405: the methods the route serves.
	Allow string
	// DecisionID identifies this decision in logs, traces and responses, so
	// that support can find a denial a client reports. The decision core
	// leaves it empty; the telemetry wrapper (internal/telemetry) sets it.
	DecisionID string
	// Key names the key that verified the token (its kid, or "#1", "#2"...
	// by position; never the key) on decisions made after verification.
	Key string
}

// Allowed reports whether the request may pass. Only an explicit Allow does.
func (d *Decision) Allowed() bool { return d.Result == Allow }

// LogLevel is the level of d's log line: Debug for an allow (the bulk of the
// traffic, and the upstream logs it anyway), Info for a deny (so that the
// decision id a refused client got leads to a line), Warn when gatehouse
// could not decide.
func (d *Decision) LogLevel() slog.Level {
	switch d.Result {
	case Allow:
		return slog.LevelDebug
	case Deny:
		return slog.LevelInfo
	default:
		return slog.LevelWarn
	}
}

// Body returns the JSON body of a deny: {"detail":"<message>"}.
func (d *Decision) Body() []byte {
	b, err := json.Marshal(struct {
		Detail string `json:"detail"`
	}{d.Message})
	if err != nil { // cannot happen for a struct of one string
		return []byte(`{"detail":"Internal error."}`)
	}
	return b
}

// ChallengeHeader returns the WWW-Authenticate value for this decision, or ""
// when none is due (allows, 503s, and 403s that are not about scope). realm is
// optional.
func (d *Decision) ChallengeHeader(realm string) string {
	switch {
	case d.Status == http.StatusUnauthorized:
	case d.Status == http.StatusForbidden && d.Challenge == ChallengeInsufficientScope:
	default:
		return ""
	}
	var b strings.Builder
	b.WriteString("Bearer")
	sep := " "
	param := func(k, v string) {
		b.WriteString(sep)
		b.WriteString(k)
		b.WriteString(`="`)
		b.WriteString(quoteEscape(v))
		b.WriteByte('"')
		sep = ", "
	}
	if realm != "" {
		param("realm", realm)
	}
	if d.Challenge != ChallengeNone {
		param("error", string(d.Challenge))
		if d.Challenge == ChallengeInsufficientScope {
			if d.Scope != "" {
				param("scope", d.Scope)
			}
		} else {
			param("error_description", d.Message)
		}
	}
	return b.String()
}

// quoteEscape escapes a value for an RFC 7230 quoted-string.
func quoteEscape(s string) string {
	if !strings.ContainsAny(s, `"\`) {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return r.Replace(s)
}

// RetryAfter returns the Retry-After value of a 503: whole seconds, at least
// 1 so that clients back off.
func (d *Decision) RetryAfter() string {
	if d.RetryAfterSeconds < 1 {
		return "1"
	}
	return strconv.Itoa(d.RetryAfterSeconds)
}

// InternalError returns the decision adapters send when deciding failed (a
// panic, or a Decision they cannot express): a 503 with Retry-After, because
// the failure may be transient, and never an allow.
func InternalError() Decision {
	return Decision{
		Result:            Deny,
		Reason:            ReasonInternalError,
		Status:            http.StatusServiceUnavailable,
		Message:           "Internal error.",
		RetryAfterSeconds: 1,
	}
}

// InvalidClaims returns the 401 "Invalid token claims." decision. Adapters
// send it for an allow whose identity they cannot put in headers, which the
// core never produces (see HeaderSafe).
func InvalidClaims() Decision { return denyInvalidClaims }
