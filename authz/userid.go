package authz

import "strings"

// NormalizeUUID returns the canonical lower-case hyphenated form of a UUID
// written in the forms Python's uuid.UUID accepts from Meet's tokens (upper
// case, no dashes, braces, "urn:uuid:"), and false when s is not a UUID.
//
// It is stricter than Python on exotic inputs (it refuses signs, underscores
// and inner whitespace that int(x, 16) would tolerate): a refusal here only
// makes the user unknown, which fails closed.
func NormalizeUUID(s string) (string, bool) {
	if isCanonicalUUID(s) {
		return s, true // the common case: no allocation
	}
	if len(s) > 64 { // longer than any accepted spelling; bounds the work
		return "", false
	}
	s = strings.ReplaceAll(s, "urn:", "")
	s = strings.ReplaceAll(s, "uuid:", "")
	s = strings.Trim(s, "{}")
	s = strings.ReplaceAll(s, "-", "")
	if len(s) != 32 {
		return "", false
	}
	var b [36]byte
	j := 0
	for i := 0; i < 32; i++ {
		if i == 8 || i == 12 || i == 16 || i == 20 {
			b[j] = '-'
			j++
		}
		c, ok := lowerHex(s[i])
		if !ok {
			return "", false
		}
		b[j] = c
		j++
	}
	return string(b[:]), true
}

// isCanonicalUUID reports whether s is already in 8-4-4-4-12 lower-case form.
func isCanonicalUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}

func lowerHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9', 'a' <= c && c <= 'f':
		return c, true
	case 'A' <= c && c <= 'F':
		return c + ('a' - 'A'), true
	default:
		return 0, false
	}
}
