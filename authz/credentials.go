package authz

import "unicode/utf8"

// Deny decisions of the credential steps (docs/design.md steps 1–3), built once.
var (
	denyMissingCredentials = unauthorized(ReasonMissingCredentials, ChallengeNone, "Authentication credentials were not provided.")
	denyInvalidHeader      = unauthorized(ReasonInvalidHeader, ChallengeInvalidRequest, "Invalid token header.")
	denyInvalidEncoding    = unauthorized(ReasonInvalidEncoding, ChallengeInvalidRequest, "Invalid token encoding.")
)

// bearerToken extracts the token from an Authorization header value the way
// Django REST framework does for Meet: split on runs of ASCII whitespace, the
// first word must be "bearer" (ASCII case-insensitive), exactly two words, and
// the token must be valid UTF-8. ok is false with the deny decision otherwise.
//
// It does not allocate: the token is a substring of h.
func bearerToken(h string) (token string, deny *Decision) {
	scheme, rest := nextField(h)
	if scheme == "" || !isBearer(scheme) {
		return "", &denyMissingCredentials
	}
	token, rest = nextField(rest)
	if token == "" {
		return "", &denyInvalidHeader
	}
	if extra, _ := nextField(rest); extra != "" {
		return "", &denyInvalidHeader
	}
	if !utf8.ValidString(token) {
		return "", &denyInvalidEncoding
	}
	return token, nil
}

// nextField returns the first run of non-whitespace bytes of s and what
// follows it, skipping leading whitespace as Python's bytes.split() does.
func nextField(s string) (field, rest string) {
	i := 0
	for i < len(s) && isASCIISpace(s[i]) {
		i++
	}
	j := i
	for j < len(s) && !isASCIISpace(s[j]) {
		j++
	}
	return s[i:j], s[j:]
}

// isASCIISpace matches Python's bytes.isspace: space, \t, \n, \v, \f, \r.
func isASCIISpace(c byte) bool {
	return c == ' ' || (c >= '\t' && c <= '\r')
}

// isBearer reports whether w equals "bearer" ignoring ASCII case only (a
// Unicode case fold would accept look-alikes that Meet refuses).
func isBearer(w string) bool {
	return EqualFoldASCII(w, "bearer")
}
