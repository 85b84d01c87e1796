package extauthz

import (
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/authz/internal/adapter"
)

// Response header names and values. Envoy expects lower-case names.
const (
	headerContentType     = "content-type"
	headerWWWAuthenticate = "www-authenticate"
	headerRetryAfter      = "retry-after"
	headerAllow           = "allow"
)

// Keys of CheckResponse.dynamic_metadata (namespace
// envoy.filters.http.ext_authz in Envoy), for access logs and rate limits.
const (
	metaResult   = "result"
	metaReason   = "reason"
	metaUserID   = "user_id"
	metaClientID = "client_id"
	// metaDecisionID is authz.Decision.DecisionID, also sent on denies as
	// the authz.DecisionIDHeader response header.
	metaDecisionID = "decision_id"
)

// ReasonDeadlineExceeded is the reason of a deny the adapter sends instead of
// an allow that was decided after the proxy's deadline had passed.
const ReasonDeadlineExceeded authz.Reason = "deadline_exceeded"

// Decisions the adapter makes itself.
var (
	// noHTTPDecision answers a CheckRequest without request.http (Istio's TCP
	// filter): there is no Authorization header to read, so this is step 1 of
	// the decision table, with the bad_request reason for operators.
	noHTTPDecision = authz.Decision{
		Result:  authz.Deny,
		Reason:  authz.ReasonBadRequest,
		Status:  http.StatusUnauthorized,
		Message: "Authentication credentials were not provided.",
	}
	// internalDecision answers when deciding failed: a panic, or a Decision
	// the adapter cannot express (zero value, impossible status). It is a 503
	// with Retry-After because the failure may be transient, and it is never
	// an allow.
	internalDecision = authz.InternalError()
	// lateDecision replaces an allow that came after the context ended. It
	// is what the core answers when the deadline cuts a directory lookup
	// short: 503, retry.
	lateDecision = authz.Decision{
		Result:            authz.Unavailable,
		Reason:            ReasonDeadlineExceeded,
		Status:            http.StatusServiceUnavailable,
		Message:           "Service temporarily unavailable.",
		RetryAfterSeconds: 1,
	}
	// badIdentityDecision answers an allow whose identity cannot be sent as
	// header values (adapter.IdentitySendable).
	badIdentityDecision = authz.InvalidClaims()
)

// identityHeaders are the configured identity header names, lower case.
type identityHeaders struct {
	user, client, scope string
}

// allowResponse holds every message of an allow CheckResponse in one
// allocation. The response only points into it, so it lives as long as the
// response does.
type allowResponse struct {
	resp    authv3.CheckResponse
	oneof   authv3.CheckResponse_OkResponse
	status  rpcstatus.Status
	ok      authv3.OkHttpResponse
	opts    [3]corev3.HeaderValueOption
	values  [3]corev3.HeaderValue
	optPtrs [3]*corev3.HeaderValueOption
	remove  [3]string
	meta    metadata
}

// denyResponse is allowResponse for denies.
type denyResponse struct {
	resp       authv3.CheckResponse
	oneof      authv3.CheckResponse_DeniedResponse
	status     rpcstatus.Status
	denied     authv3.DeniedHttpResponse
	httpStatus typev3.HttpStatus
	opts       [5]corev3.HeaderValueOption
	values     [5]corev3.HeaderValue
	optPtrs    [5]*corev3.HeaderValueOption
	meta       metadata
}

// metadata builds a structpb.Struct of up to five strings without going
// through map[string]any and structpb.NewStruct.
type metadata struct {
	st      structpb.Struct
	values  [5]structpb.Value
	strings [5]structpb.Value_StringValue
	n       int
}

func (m *metadata) init() *structpb.Struct {
	m.st.Fields = make(map[string]*structpb.Value, len(m.values))
	return &m.st
}

// add sets key to s, skipping empty values (a public allow has no user).
func (m *metadata) add(key, s string) {
	if s == "" || m.n == len(m.values) {
		return
	}
	v, sv := &m.values[m.n], &m.strings[m.n]
	m.n++
	sv.StringValue = validUTF8(s)
	v.Kind = sv
	m.st.Fields[key] = v
}

// allowCheckResponse builds the OK answer for an allow: identity headers set
// (replacing client-sent copies), and the headers it does not set removed.
// ok is false when an identity value cannot be sent as a header value.
func allowCheckResponse(d *authz.Decision, names *identityHeaders) (resp *authv3.CheckResponse, ok bool) {
	id := &d.Identity
	if !adapter.IdentitySendable(id) {
		return nil, false
	}
	b := new(allowResponse)
	b.resp.Status = &b.status // code 0: OK
	b.resp.HttpResponse = &b.oneof
	b.oneof.OkResponse = &b.ok

	headers := b.optPtrs[:0]
	remove := b.remove[:0]
	for i, h := range [3]struct{ name, value string }{
		{names.user, id.UserID},
		{names.client, id.ClientID},
		{names.scope, id.Scope},
	} {
		// An unset value is removed, never sent empty: an empty identity
		// header could still be read as "present" by a backend. Set and
		// remove are exclusive because Envoy removes after setting.
		if h.value == "" {
			remove = append(remove, h.name)
			continue
		}
		headers = append(headers, setHeader(&b.opts[i], &b.values[i], h.name, h.value))
	}
	// Two identity headers configured with the same name must not remove
	// what the other sets.
	remove = slices.DeleteFunc(remove, func(name string) bool {
		return slices.ContainsFunc(headers, func(o *corev3.HeaderValueOption) bool { return o.Header.Key == name })
	})
	if len(headers) > 0 {
		b.ok.Headers = headers
	}
	if len(remove) > 0 {
		b.ok.HeadersToRemove = remove
	}

	b.resp.DynamicMetadata = b.meta.init()
	b.meta.add(metaResult, authz.Allow.String())
	b.meta.add(metaReason, string(d.Reason))
	b.meta.add(metaUserID, id.UserID)
	b.meta.add(metaClientID, id.ClientID)
	b.meta.add(metaDecisionID, d.DecisionID)
	return &b.resp, true
}

// denyCheckResponse builds the answer for every decision that is not an
// allow. d must have passed normalizeDeny.
func denyCheckResponse(d *authz.Decision, realm string) *authv3.CheckResponse {
	b := new(denyResponse)
	b.resp.Status = &b.status
	b.status.Code = int32(grpcCode(d))
	b.resp.HttpResponse = &b.oneof
	b.oneof.DeniedResponse = &b.denied
	b.denied.Status = &b.httpStatus
	b.httpStatus.Code = typev3.StatusCode(d.Status)
	b.denied.Body = string(d.Body())

	headers := b.optPtrs[:0]
	headers = append(headers, setHeader(&b.opts[0], &b.values[0], headerContentType, adapter.ContentTypeJSON))
	dh := adapter.DenyHeadersOf(d, realm)
	if dh.Challenge != "" {
		headers = append(headers, setHeader(&b.opts[1], &b.values[1], headerWWWAuthenticate, dh.Challenge))
	}
	if dh.RetryAfter != "" {
		headers = append(headers, setHeader(&b.opts[2], &b.values[2], headerRetryAfter, dh.RetryAfter))
	}
	if dh.DecisionID != "" {
		headers = append(headers, setHeader(&b.opts[3], &b.values[3], authz.DecisionIDHeader, dh.DecisionID))
	}
	if dh.Allow != "" {
		headers = append(headers, setHeader(&b.opts[4], &b.values[4], headerAllow, dh.Allow))
	}
	b.denied.Headers = headers

	b.resp.DynamicMetadata = b.meta.init()
	b.meta.add(metaResult, d.Result.String())
	b.meta.add(metaReason, string(d.Reason))
	b.meta.add(metaUserID, d.Identity.UserID)
	b.meta.add(metaClientID, d.Identity.ClientID)
	b.meta.add(metaDecisionID, d.DecisionID)
	return &b.resp
}

// setHeader fills opt and v in place and returns opt. OVERWRITE_IF_EXISTS_OR_ADD
// replaces every existing copy (Envoy's setCopy, since 1.16). The deprecated
// append field is left unset: when present, it overrides append_action. Deny
// headers get the same action so that Envoys that apply append_action to
// local replies replace Envoy's own content-type instead of adding a second.
func setHeader(opt *corev3.HeaderValueOption, v *corev3.HeaderValue, name, value string) *corev3.HeaderValueOption {
	v.Key = name
	v.Value = value
	opt.Header = v
	opt.AppendAction = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
	return opt
}

// normalizeDeny returns the decision to send for a non-allow: d itself when
// it is well formed, else internalDecision keeping d's identity and decision
// id (adapter.NormalizeDeny). It differs from forwardauth's on purpose, in
// two ways:
//
//   - Any HTTP error status (400–599) is sendable: Envoy sends
//     denied_response's status to the client as is. A 2xx/3xx is not, or
//     Envoy would pass it on with a deny body. forwardauth sends only 401,
//     403 and 503, the statuses every forward-auth proxy reads alike.
//   - Message and scope are made valid UTF-8: they go into proto3 string
//     fields (body, WWW-Authenticate), whose marshalling fails otherwise.
//     forwardauth writes bytes, and json.Marshal makes its body valid.
func normalizeDeny(d authz.Decision) authz.Decision {
	d = adapter.NormalizeDeny(d, httpError)
	d.Message = validUTF8(d.Message)
	d.Scope = validUTF8(d.Scope)
	return d
}

// httpError reports whether status is a 4xx or 5xx.
func httpError(status int) bool { return status >= 400 && status <= 599 }

// grpcCode is the CheckResponse status for a deny. Envoy only looks at
// OK/non-OK; the specific code is for logs and other clients, and follows
// the usual HTTP-to-gRPC mapping.
func grpcCode(d *authz.Decision) codes.Code {
	switch {
	case d.Reason == authz.ReasonInternalError:
		return codes.Internal
	case d.Reason == ReasonDeadlineExceeded:
		return codes.DeadlineExceeded
	case d.Result == authz.Unavailable:
		return codes.Unavailable
	}
	switch d.Status {
	case http.StatusBadRequest:
		return codes.InvalidArgument
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusTooManyRequests:
		return codes.ResourceExhausted
	case http.StatusServiceUnavailable:
		return codes.Unavailable
	}
	if d.Status >= 500 {
		return codes.Internal
	}
	return codes.PermissionDenied
}

// validUTF8 replaces invalid UTF-8 so that the string can go into a proto3
// string field, whose marshalling would otherwise fail.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
