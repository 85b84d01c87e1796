package authz

import (
	"unicode/utf8"

	"golang.org/x/net/http/httpguts"
)

// HTTP syntax rules used by the decision core, by both proxy adapters and by
// the configuration, kept in one place so that they cannot drift apart. The
// RFC 9110 tables themselves are golang.org/x/net/http/httpguts', the ones
// net/http and the HTTP/2 server check with.

// IsToken reports whether s is a non-empty RFC 9110 token (section 5.6.2):
// what a method (section 9.1) and a header field name (section 5.1) must be.
func IsToken(s string) bool {
	// A field name is exactly a token; httpguts names the check after it.
	return httpguts.ValidHeaderFieldName(s)
}

// HeaderSafe reports whether s can be sent as an HTTP header value: valid
// UTF-8 (proto3 strings must be) and no control character but horizontal
// tab, so no CR, LF or NUL can split a header line upstream.
func HeaderSafe(s string) bool {
	// httpguts refuses the same control characters (all but tab, and DEL);
	// bytes of multi-byte UTF-8 sequences are all >= 0x80, so its byte scan
	// finds every one of them in a UTF-8 string.
	return utf8.ValidString(s) && httpguts.ValidHeaderFieldValue(s)
}

// EqualFoldASCII reports whether s equals lower, which must be lower case,
// ignoring ASCII case only. Header names and auth schemes are ASCII:
// Unicode folding (strings.EqualFold) would let a look-alike such as the
// Kelvin sign "K" match "k", which servers and Meet do not.
func EqualFoldASCII(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
