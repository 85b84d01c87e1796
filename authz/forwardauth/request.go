package forwardauth

import (
	"errors"
	"net/http"
	"strings"

	"github.com/gatehouse-authz/gatehouse/authz"
)

// Header names, in the canonical form net/http stores request headers under,
// so that lookups are plain map reads.
const (
	hdrAuthorization   = "Authorization"
	hdrRequestID       = "X-Request-Id"
	hdrTraceParent     = "Traceparent"
	hdrTraceState      = "Tracestate"
	hdrOriginalMethod  = "X-Original-Method"
	hdrOriginalURI     = "X-Original-Uri"
	hdrOriginalURL     = "X-Original-Url"
	hdrForwardedMethod = "X-Forwarded-Method"
	hdrForwardedURI    = "X-Forwarded-Uri"
	hdrForwardedHost   = "X-Forwarded-Host"
	hdrContentType     = "Content-Type"
	hdrContentLength   = "Content-Length"
	hdrWWWAuthenticate = "Www-Authenticate"
	hdrRetryAfter      = "Retry-After"
	hdrAllow           = "Allow"
	hdrDecisionID      = "X-Gatehouse-Decision-Id" // authz.DecisionIDHeader, canonical
	hdrEnvoyAuthRemove = "X-Envoy-Auth-Headers-To-Remove"
)

// mode says how the original request was described to the handler.
type mode uint8

const (
	// modeNone: no usable description (the check is refused).
	modeNone mode = iota
	// modeEnvoy: Envoy http_service, the check request under the prefix.
	modeEnvoy
	// modeOriginal: X-Original-* headers (nginx auth_request, ingress-nginx).
	modeOriginal
	// modeForwarded: X-Forwarded-* headers (Traefik, Caddy).
	modeForwarded
)

// String returns the name used in log lines.
func (m mode) String() string {
	switch m {
	case modeEnvoy:
		return "http_service"
	case modeOriginal:
		return "x-original"
	case modeForwarded:
		return "x-forwarded"
	default:
		return "none"
	}
}

// Problems found while reading the original request. They go to the log
// line (as problem=...) and never to the client, whose answer is a plain
// 403: they are proxy misconfigurations or forged headers.
const (
	problemOutsidePrefix    = "path outside the check prefix"
	problemNoOriginal       = "no X-Original-URI, X-Original-URL or X-Forwarded-Uri header"
	problemMixed            = "both X-Original-* and X-Forwarded-Method/Uri headers"
	problemHeadersUnderPath = "X-Original-* or X-Forwarded-Method/Uri header on a request under the prefix (Envoy http_service mode)"
	problemRepeated         = "forwarding header repeated"
	problemNoMethod         = "original method header missing or empty"
	problemNoURI            = "original URI header missing"
	problemBadURI           = "original URI does not start with /"
	problemBadURL           = "X-Original-URL is not scheme://authority/path"
	problemURIMismatch      = "X-Original-URI and X-Original-URL disagree"
	problemDoubleSlash      = "original path starts with // (Envoy path_prefix with a trailing slash?)"
	problemAsterisk         = "request target * (OPTIONS *) is not a check"
)

// DefaultPathPrefix is the prefix used when Options.PathPrefix is empty.
const DefaultPathPrefix = "/check"

// CleanPathPrefix validates a configured path prefix and returns it in the
// form the handler compares against: "" selects DefaultPathPrefix, a
// trailing "/" is dropped, and "/" alone becomes "" (Envoy http_service
// without path_prefix: every path is a check, the header modes are off).
// A prefix must start with "/" and hold no query, fragment, empty, "." or
// ".." segment, or characters outside the printable ASCII range.
func CleanPathPrefix(p string) (string, error) {
	if p == "" {
		return DefaultPathPrefix, nil
	}
	if p[0] != '/' {
		return "", errors.New("forwardauth: path prefix must start with /")
	}
	if p == "/" {
		return "", nil
	}
	p = strings.TrimSuffix(p, "/")
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c >= 0x7f || c == '?' || c == '#' || c == '%' {
			return "", errors.New("forwardauth: path prefix may only hold printable ASCII without space, ?, # or %")
		}
	}
	for _, seg := range strings.Split(p[1:], "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", errors.New("forwardauth: path prefix has an empty, . or .. segment")
		}
	}
	return p, nil
}

// original finds the request being authorised. On success problem is "";
// otherwise the returned Request is empty and problem says why (for the log).
// It does not allocate unless Authorization is repeated.
func original(r *http.Request, prefix string) (req authz.Request, m mode, problem string) {
	h := r.Header
	target := r.RequestURI
	if target == "*" {
		// "OPTIONS *" asks about the server, not a request to authorise.
		return authz.Request{}, modeNone, problemAsterisk
	}
	path := target
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}

	origMethod, origURI, origURL := h[hdrOriginalMethod], h[hdrOriginalURI], h[hdrOriginalURL]
	fwdMethod, fwdURI := h[hdrForwardedMethod], h[hdrForwardedURI]
	hasOriginal := len(origMethod)+len(origURI)+len(origURL) > 0
	hasForwarded := len(fwdMethod)+len(fwdURI) > 0

	switch {
	case len(path) > len(prefix) && path[len(prefix)] == '/' && strings.HasPrefix(path, prefix):
		// Envoy http_service: path_prefix + original path (and query).
		if hasOriginal || hasForwarded {
			return authz.Request{}, modeEnvoy, problemHeadersUnderPath
		}
		p := target[len(prefix):]
		if strings.HasPrefix(p, "//") && prefix != "" {
			return authz.Request{}, modeEnvoy, problemDoubleSlash
		}
		if r.Method == "" { // net/http never delivers one; synthetic requests might
			return authz.Request{}, modeEnvoy, problemNoMethod
		}
		req = authz.Request{Method: r.Method, Path: p, Host: r.Host}
		m = modeEnvoy
	case path != prefix || prefix == "":
		return authz.Request{}, modeNone, problemOutsidePrefix
	case hasOriginal && hasForwarded:
		return authz.Request{}, modeNone, problemMixed
	case hasOriginal:
		m = modeOriginal
		if req, problem = fromOriginal(r, origMethod, origURI, origURL); problem != "" {
			return authz.Request{}, m, problem
		}
	case hasForwarded:
		m = modeForwarded
		if req, problem = fromForwarded(r, fwdMethod, fwdURI); problem != "" {
			return authz.Request{}, m, problem
		}
	default:
		return authz.Request{}, modeNone, problemNoOriginal
	}
	req.Authorization = authorization(h[hdrAuthorization])
	// W3C trace context, for joining traces only: it plays no part in the
	// decision, so a client-sent value is harmless.
	if v := h[hdrTraceParent]; len(v) == 1 {
		req.TraceParent = v[0]
		if v := h[hdrTraceState]; len(v) > 0 {
			req.TraceState = v[0]
		}
	}
	return req, m, ""
}

// fromOriginal reads nginx auth_request / ingress-nginx headers.
func fromOriginal(r *http.Request, method, uri, url []string) (authz.Request, string) {
	meth, problem := single(method)
	if problem != "" {
		return authz.Request{}, problem
	}
	if meth == "" {
		return authz.Request{}, problemNoMethod
	}
	if len(uri) == 0 && len(url) == 0 {
		return authz.Request{}, problemNoURI
	}
	req := authz.Request{Method: meth, Host: r.Host}
	var urlTarget string
	if len(url) > 0 {
		u, problem := single(url)
		if problem != "" {
			return authz.Request{}, problem
		}
		host, target, ok := splitURL(u)
		if !ok {
			return authz.Request{}, problemBadURL
		}
		req.Host, urlTarget = host, target
	}
	if len(uri) > 0 {
		u, problem := single(uri)
		if problem != "" {
			return authz.Request{}, problem
		}
		if len(url) > 0 && u != urlTarget {
			return authz.Request{}, problemURIMismatch
		}
		req.Path = u
	} else {
		req.Path = urlTarget
	}
	if !strings.HasPrefix(req.Path, "/") {
		return authz.Request{}, problemBadURI
	}
	return req, ""
}

// fromForwarded reads Traefik / Caddy headers.
func fromForwarded(r *http.Request, method, uri []string) (authz.Request, string) {
	meth, problem := single(method)
	if problem != "" {
		return authz.Request{}, problem
	}
	if meth == "" {
		return authz.Request{}, problemNoMethod
	}
	if len(uri) == 0 {
		return authz.Request{}, problemNoURI
	}
	u, problem := single(uri)
	if problem != "" {
		return authz.Request{}, problem
	}
	if !strings.HasPrefix(u, "/") {
		return authz.Request{}, problemBadURI
	}
	host := r.Host
	if v := r.Header[hdrForwardedHost]; len(v) > 0 && v[0] != "" {
		host = v[0]
	}
	return authz.Request{Method: meth, Path: u, Host: host}, ""
}

// single returns the one value of a header; a repeated header is a problem
// (a proxy that appends instead of replacing would let a client's copy come
// first), an absent one is "".
func single(v []string) (string, string) {
	switch len(v) {
	case 0:
		return "", ""
	case 1:
		return v[0], ""
	default:
		return "", problemRepeated
	}
}

// splitURL splits "scheme://authority/target" into authority and target
// ("/..."). The authority ends at the first "/", "?" or "#" (RFC 3986), and
// only "/" may end it: with "?" or "#" the proxy's Host header, not the
// request, would decide where the path starts.
func splitURL(u string) (host, target string, ok bool) {
	i := strings.Index(u, "://")
	if i <= 0 {
		return "", "", false
	}
	for j := 0; j < i; j++ {
		if c := u[j]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || j > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return "", "", false
		}
	}
	rest := u[i+3:]
	j := strings.IndexAny(rest, "/?#")
	if j < 0 || rest[j] != '/' {
		return "", "", false
	}
	return rest[:j], rest[j:], true
}

// authorization returns the Authorization value; copies are joined with ","
// (as Envoy joins them) so that two credentials never read as one.
func authorization(v []string) string {
	switch len(v) {
	case 0:
		return ""
	case 1:
		return v[0]
	default:
		return strings.Join(v, ",")
	}
}
