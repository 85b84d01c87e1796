package authz

import (
	"strings"
	"unicode/utf8"
)

// Refusal says why a request is refused before any credential is looked at:
// what the backend would do with it cannot be decided safely, so no token
// could make it acceptable.
type Refusal uint8

const (
	// RefuseNone: the request can be judged.
	RefuseNone Refusal = iota
	// RefusePath: the request target does not name one path that every
	// server behind the proxy would route on (see RoutePath).
	RefusePath
	// RefuseMethod: the method is not an RFC 9110 token.
	RefuseMethod
)

// Deny decisions of refused requests: 403 without challenge (no credential
// would help), reason bad_request.
var (
	denyBadPath   = forbidden(ReasonBadRequest, ChallengeNone, "", "Invalid request path.")
	denyBadMethod = forbidden(ReasonBadRequest, ChallengeNone, "", "Invalid request method.")
)

// decision returns the deny of a refusal.
func (r Refusal) decision() Decision {
	if r == RefuseMethod {
		return denyBadMethod
	}
	return denyBadPath
}

// RouteTarget returns what a Policy matches req on: the path the backend
// will route on (RoutePath of req.Path). refuse is not RefuseNone when req
// must be refused instead: a method that is not an RFC 9110 token, or a path
// RoutePath cannot decide. Methods are matched ASCII case-insensitively by
// the policies (servers such as Django upper-case them), so a method is not
// refused for its case.
//
// It allocates only when the path holds a percent-escape.
func RouteTarget(req *Request) (path string, refuse Refusal) {
	if !IsToken(req.Method) {
		return "", RefuseMethod
	}
	path, ok := RoutePath(req.Path)
	if !ok {
		return "", RefusePath
	}
	return path, RefuseNone
}

// plainPathByte marks the ASCII bytes a path may hold that need no further
// look ("/", "%", "#", "\", control characters and non-ASCII bytes do), so
// that the per-request scan costs a load and a test per byte. It is computed
// once and never written after.
var plainPathByte = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '/' && c != '%' && c != '#' && c != '\\'
	}
	return t
}()

// RoutePath returns the path a backend routes the request target on: the
// target without its query string, percent-decoded once, as WSGI's PATH_INFO
// (and so Django's router) sees it. Route tables match that path, so an
// encoded spelling of a route ("/room%73/") is that route.
//
// ok is false, and the request must be refused, when that path cannot be
// decided safely because servers disagree on it or would resolve it to
// another path:
//
//   - the target does not start with "/" (e.g. "*" or an absolute URI);
//   - a "#" anywhere in the target (servers that split a fragment off route
//     on what precedes it);
//   - an invalid percent-escape ("%" not followed by two hex digits);
//   - an encoded "/" or "\" (%2F, %5C), or a raw "\": some servers treat them
//     as separators, others as data;
//   - NUL or another control character, raw or encoded (%00, %0A, %7F);
//   - a dot segment ("." or "..", in any spelling: %2e, %2E, .%2e, ...);
//   - an empty segment ("//"), which some servers merge;
//   - bytes that are not UTF-8 once decoded.
//
// Paths stay case-sensitive, as Django's are. RoutePath does not allocate
// unless the path holds a "%".
func RoutePath(target string) (path string, ok bool) {
	path = target
	if i := strings.IndexByte(target, '?'); i >= 0 {
		path = target[:i]
		if strings.IndexByte(target[i:], '#') >= 0 {
			return "", false
		}
	}
	if path == "" || path[0] != '/' {
		return "", false
	}
	escaped, ascii, ok := scanPath(path, false)
	if !ok {
		return "", false
	}
	if escaped {
		if path, ok = unescapePath(path); !ok {
			return "", false
		}
		// Check the decoded path again: escapes may have spelt a dot
		// segment, or non-ASCII bytes.
		if _, ascii, ok = scanPath(path, true); !ok {
			return "", false
		}
	}
	if !ascii && !utf8.ValidString(path) {
		return "", false
	}
	return path, true
}

// scanPath checks p (starting with "/") in one pass: no control character,
// "\" or (unless decoded) "#"; no dot segment; no empty segment but a
// trailing one ("/a/" is fine, "/a//b" and "//" are not). It reports whether
// p holds a "%" (when not decoded) and whether it is all ASCII.
func scanPath(p string, decoded bool) (escaped, ascii, ok bool) {
	ascii = true
	seg := 1 // start of the current segment
	for i := 1; i < len(p); i++ {
		c := p[i]
		if plainPathByte[c] {
			continue
		}
		switch {
		case c == '/':
			if !segmentOK(p[seg:i]) || i == seg {
				return false, false, false
			}
			seg = i + 1
		case c >= utf8.RuneSelf:
			ascii = false
		case c == '%' && !decoded:
			escaped = true
		case decoded && (c == '%' || c == '#'):
			// Data once decoded: the backend decodes once too.
		default:
			return false, false, false
		}
	}
	return escaped, ascii, segmentOK(p[seg:])
}

// segmentOK reports whether a segment is not a dot segment.
func segmentOK(s string) bool {
	return s != "." && s != ".."
}

// unescapePath percent-decodes p once. It refuses invalid escapes and the
// escape of "/", so that a decoded path's "/" are exactly the raw ones;
// scanPath then checks the decoded bytes as it checks raw ones. A decoded
// "%" (from %25) or "#" (%23) is data: the backend decodes once too.
func unescapePath(p string) (string, bool) {
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '%' {
			if i+2 >= len(p) {
				return "", false
			}
			hi, ok1 := unhex(p[i+1])
			lo, ok2 := unhex(p[i+2])
			if !ok1 || !ok2 {
				return "", false
			}
			if c = hi<<4 | lo; c == '/' {
				return "", false
			}
			i += 2
		}
		b.WriteByte(c)
	}
	return b.String(), true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
