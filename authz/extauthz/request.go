package extauthz

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/gatehouse-authz/gatehouse/authz"
)

// Header names Envoy uses in CheckRequest. The headers map is lower-cased by
// Envoy; header_map keys are compared ASCII case-insensitively anyway because
// other producers (gRPC A92 servers, hand-written clients) are less strict.
const (
	headerAuthorization = "authorization"
	headerRequestID     = "x-request-id"
	headerTraceParent   = "traceparent"
	headerTraceState    = "tracestate"
	pseudoMethod        = ":method"
	pseudoPath          = ":path"
	pseudoAuthority     = ":authority"
)

// RequestFromCheck extracts the attributes the decision core needs from req.
// It reports false when req carries no attributes.request.http, as with
// Istio's TCP (network) ext_authz filter; the caller must then deny.
//
// Method, path and host come from their own fields. When one of them is empty
// (gRPC's A92 ext_authz leaves host unset) it falls back to the matching
// pseudo-header (:method, :path, :authority), which the same proxy produced.
// Authorization comes from the headers map or, when that map lacks it, from
// header_map (Envoy's encode_raw_headers). Raw values are passed through byte
// for byte, even when they are not UTF-8, so that the core can refuse them
// with its own message; several raw values are joined with "," like Envoy
// joins them in the headers map, so a duplicated header never validates as a
// single credential.
//
// Method and path are passed on as sent, neither decoded nor case-folded: the
// decision core judges them as the backend will see them (authz.RouteTarget),
// in the one place it shares with the forward-auth adapter.
//
// The returned Request shares ContextExtensions with req; callers must not
// modify either.
func RequestFromCheck(req *authv3.CheckRequest) (authz.Request, bool) {
	http := req.GetAttributes().GetRequest().GetHttp()
	if http == nil {
		return authz.Request{}, false
	}
	r := authz.Request{
		Method:            http.GetMethod(),
		Path:              http.GetPath(),
		Host:              http.GetHost(),
		ContextExtensions: req.GetAttributes().GetContextExtensions(),
	}
	if len(r.ContextExtensions) == 0 {
		r.ContextExtensions = nil
	}
	if r.Method == "" {
		r.Method, _ = header(http, pseudoMethod)
	}
	if r.Path == "" {
		r.Path, _ = header(http, pseudoPath)
	}
	if r.Host == "" {
		r.Host, _ = header(http, pseudoAuthority)
	}
	r.Authorization, _ = header(http, headerAuthorization)
	// W3C trace context (same lookup as Authorization), so that gatehouse's
	// span joins the caller's trace; tracestate means nothing without
	// traceparent. Neither plays a part in the decision.
	if r.TraceParent, _ = header(http, headerTraceParent); r.TraceParent != "" {
		r.TraceState, _ = header(http, headerTraceState)
	}
	return r, true
}

// header returns the value of the header named name (lower case) from the
// headers map, or else from header_map. ok is false when neither has it.
func header(http *authv3.AttributeContext_HttpRequest, name string) (v string, ok bool) {
	if v, ok := http.GetHeaders()[name]; ok {
		return v, true
	}
	return rawHeader(http.GetHeaderMap().GetHeaders(), name)
}

// rawHeader looks name up in a header_map list, comparing names ASCII
// case-insensitively (authz.EqualFoldASCII: a Unicode fold would let another
// header match). It allocates only when the header occurs more than once
// (values are then joined with ",").
func rawHeader(hs []*corev3.HeaderValue, name string) (v string, ok bool) {
	var joined []byte
	for _, h := range hs {
		if h == nil || !authz.EqualFoldASCII(h.GetKey(), name) {
			continue
		}
		if !ok {
			v, ok = headerValue(h), true
			continue
		}
		if joined == nil {
			joined = append(joined, v...)
		}
		joined = append(joined, ',')
		joined = append(joined, headerValue(h)...)
	}
	if joined != nil {
		return string(joined), true
	}
	return v, ok
}

// headerValue prefers raw_value (bytes, possibly not UTF-8) over value, as
// Envoy fills only raw_value when encode_raw_headers is on.
func headerValue(h *corev3.HeaderValue) string {
	if raw := h.GetRawValue(); raw != nil {
		return string(raw)
	}
	return h.GetValue()
}

// requestID returns the id to correlate a decision with proxy logs: the
// x-request-id header, else Envoy's stream id (attributes.request.http.id).
func requestID(http *authv3.AttributeContext_HttpRequest) string {
	if v, ok := header(http, headerRequestID); ok && v != "" {
		return v
	}
	return http.GetId()
}
