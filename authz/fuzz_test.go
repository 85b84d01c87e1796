package authz

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzBearerToken checks the header parser against a direct transcription
// of DRF's rule (split on ASCII whitespace, "bearer", two words, UTF-8).
func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{
		"", " ", "Bearer", "Bearer x", "bearer  x ", "BEARER\tx\ty", "Basic x",
		"Bearer \xff", "Bearer\u00a0x", "\vBearer\fx\r\n", "Bearerx y",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		token, deny := bearerToken(h)
		words := strings.FieldsFunc(h, func(r rune) bool { return r < 0x80 && isASCIISpace(byte(r)) })
		// FieldsFunc decodes runes: an invalid byte is U+FFFD, never a space,
		// so the split matches a byte-wise one.
		switch {
		case len(words) == 0 || strings.ToLower(words[0]) != "bearer" || !isASCII(words[0]):
			if deny != &denyMissingCredentials {
				t.Fatalf("%q: got %v, want missing credentials", h, deny)
			}
		case len(words) != 2:
			if deny != &denyInvalidHeader {
				t.Fatalf("%q: got %v, want invalid header", h, deny)
			}
		case !utf8.ValidString(words[1]):
			if deny != &denyInvalidEncoding {
				t.Fatalf("%q: got %v, want invalid encoding", h, deny)
			}
		default:
			if deny != nil || token != words[1] {
				t.Fatalf("%q: got token %q deny %v, want %q", h, token, deny, words[1])
			}
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// FuzzDecide: whatever the Authorization header, an allow implies a token
// that golang-jwt verifies with the secret and HS256, delegated, for the one
// active user of the directory.
func FuzzDecide(f *testing.F) {
	seeds := []jwt.MapClaims{
		meetClaims(),
		with(meetClaims(), "user_id", inactiveUser),
		with(meetClaims(), "exp", testNow.Unix()-1),
		with(meetClaims(), "delegated", "true"),
		with(meetClaims(), "user_id", strings.ToUpper(activeUser)),
		with(meetClaims(), "aud", "x"),
	}
	for _, mc := range seeds {
		f.Add("Bearer " + sign(f, mc))
	}
	f.Add("Bearer " + signWith(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, meetClaims()))
	f.Add("Bearer a.b.c")
	fx := newFixture(f, nil)
	f.Fuzz(func(t *testing.T, header string) {
		d := fx.a.Decide(context.Background(), &Request{Method: "GET", Path: "/", Authorization: header})
		if !d.Allowed() {
			if d.Status != 401 && d.Status != 403 && d.Status != 503 {
				t.Fatalf("deny with status %d", d.Status)
			}
			return
		}
		token, deny := bearerToken(header)
		if deny != nil {
			t.Fatalf("allowed %q without a bearer token", header)
		}
		mc := jwt.MapClaims{}
		_, err := jwt.NewParser(
			jwt.WithValidMethods([]string{"HS256"}),
			jwt.WithTimeFunc(fx.clock.Now),
			jwt.WithIssuer(DefaultIssuer),
			jwt.WithPaddingAllowed(),
		).ParseWithClaims(token, mc, func(*jwt.Token) (any, error) { return testSecret, nil })
		if err != nil {
			t.Fatalf("allowed a token golang-jwt refuses: %v", err)
		}
		uid, _ := mc["user_id"].(string)
		if n, ok := NormalizeUUID(uid); !ok || n != activeUser || mc["delegated"] != true {
			t.Fatalf("allowed claims %v", mc)
		}
	})
}

// FuzzNormalizeUUID: a normalised id is canonical and stable.
func FuzzNormalizeUUID(f *testing.F) {
	for _, s := range []string{activeUser, strings.ToUpper(activeUser), "{" + activeUser + "}", "urn:uuid:" + activeUser, "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := NormalizeUUID(s)
		if !ok {
			return
		}
		if !isCanonicalUUID(n) {
			t.Fatalf("NormalizeUUID(%q) = %q, not canonical", s, n)
		}
		if again, ok := NormalizeUUID(n); !ok || again != n {
			t.Fatalf("not idempotent: %q -> %q -> %q", s, n, again)
		}
	})
}
