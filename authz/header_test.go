package authz

import (
	"strings"
	"testing"
)

// TestIsToken checks every byte against RFC 9110's tchar, written out here
// independently of the table IsToken uses.
func TestIsToken(t *testing.T) {
	tchar := func(c byte) bool {
		return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
	}
	for c := 0; c < 256; c++ {
		s := string([]byte{byte(c)})
		if got := IsToken(s); got != tchar(byte(c)) {
			t.Errorf("IsToken(%q) = %v", s, got)
		}
		if got := IsToken("GET" + s); got != tchar(byte(c)) {
			t.Errorf("IsToken(%q) = %v", "GET"+s, got)
		}
	}
	for in, want := range map[string]bool{
		"": false, "GET": true, "get": true, "M-SEARCH": true, "X-Auth-User-Id": true,
		"X Auth": false, "X-Auth:": false, "X-Ä": false, "GET\r\n": false, "(GET)": false,
	} {
		if got := IsToken(in); got != want {
			t.Errorf("IsToken(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestEqualFoldASCII(t *testing.T) {
	for _, tc := range []struct {
		s, lower string
		want     bool
	}{
		{"bearer", "bearer", true},
		{"Bearer", "bearer", true},
		{"BEARER", "bearer", true},
		{"bEaReR", "bearer", true},
		{"", "", true},
		{"bearer ", "bearer", false},
		{"beare", "bearer", false},
		{"beaker", "bearer", false},
		// Only A-Z fold: '[' is not the upper case of '{', nor '@' of '`'.
		{"[", "{", false},
		{"@", "`", false},
		// Unicode folding would match these; ASCII folding must not.
		{"\u212aey", "key", false},                       // Kelvin sign
		{"x-auth-user-\u0130d", "x-auth-user-id", false}, // dotted capital I
		{"X-Request-Id", "x-request-id", true},
	} {
		if got := EqualFoldASCII(tc.s, tc.lower); got != tc.want {
			t.Errorf("EqualFoldASCII(%q, %q) = %v, want %v", tc.s, tc.lower, got, tc.want)
		}
	}
}

func TestHeaderSafe(t *testing.T) {
	for in, want := range map[string]bool{
		"":                   true,
		"6f1c2f9e-3b7a":      true,
		"rooms:read admin":   true,
		"tab\tok":            true,
		"é unicode ✓":        true,
		"cr\rlf":             false,
		"lf\n":               false,
		"nul\x00":            false,
		"del\x7f":            false,
		"bad utf8 \xff":      false,
		"truncated \xe2\x9c": false,
	} {
		if got := HeaderSafe(in); got != want {
			t.Errorf("HeaderSafe(%q) = %v, want %v", in, got, want)
		}
	}
}
