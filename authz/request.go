package authz

// Request holds the attributes of the request being authorised, as a proxy
// adapter extracted them. Strings may hold arbitrary bytes: raw header values
// from Envoy's header_map are not guaranteed to be UTF-8.
type Request struct {
	// Method is the HTTP method as the proxy sent it, in whatever case the
	// client used. Policies judge it upper-cased, as backends do, and refuse
	// one that is not an RFC 9110 token (RouteTarget).
	Method string
	// Path is the raw request target (path and query), as the proxy sent it.
	// Policies match the path the backend will see, RoutePath's decoding of
	// it, and refuse what cannot be decoded safely (RouteTarget).
	Path string
	// Host is the :authority / Host of the request.
	Host string
	// Authorization is the value of the Authorization header; empty when the
	// header is absent.
	Authorization string
	// ContextExtensions carries per-route settings chosen by the proxy (Envoy's
	// check_settings.context_extensions); nil when there are none.
	ContextExtensions map[string]string
	// TraceParent and TraceState are the W3C Trace Context headers
	// (traceparent, tracestate) of the request, as the proxy saw them; empty
	// when absent. They only join gatehouse's span to the caller's trace and
	// play no part in the decision.
	TraceParent, TraceState string
}
