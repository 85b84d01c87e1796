package authz

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
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
	// Token details PyJWT refuses (or reads its own way), signed: crit,
	// b64, kid, bytes after the JSON, invalid UTF-8, lone surrogates, and a
	// list scope element holding several words.
	for _, hp := range [][2]string{
		{`{"alg":"HS256","crit":["x-custom-policy"],"x-custom-policy":1}`, payloadWith("")},
		{`{"alg":"HS256","crit":["b64"],"b64":true}`, payloadWith("")},
		{`{"alg":"HS256","crit":["b64"],"b64":false}`, payloadWith("")},
		{`{"alg":"HS256","crit":[]}`, payloadWith("")},
		{`{"alg":"HS256","kid":7}`, payloadWith("")},
		{`{"alg":"HS256"} x`, payloadWith("")},
		{`{"alg":"HS256"}`, payloadWith("") + `{"user_id":"x"}`},
		{`{"alg":"HS256"}`, payloadWith("") + " \n"},
		{`{"alg":"HS256"}`, payloadWith(`,"note":"` + "\xff" + `"`)},
		{`{"alg":"HS256"}`, payloadWith(`,"note":"\ud800"`)},
		{`{"alg":"HS256"}`, payloadFor(`"`+activeUser+`\ud800"`, `"`+testClient+`"`, `"rooms:list"`)},
		{`{"alg":"HS256"}`, payloadFor(`"`+activeUser+`"`, `"`+testClient+`"`, `["rooms:list rooms:create"]`)},
	} {
		f.Add("Bearer " + rawToken(f, hp[0], hp[1]))
	}
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
		// PyJWT's header and JSON rules: strict JSON with nothing after it,
		// no crit but b64, no b64=false, kid a string.
		parts := strings.Split(token, ".")
		hb, err1 := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[0], "="))
		pb, err2 := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
		if err1 != nil || err2 != nil || !json.Valid(hb) || !json.Valid(pb) || !utf8.Valid(pb) {
			t.Fatalf("allowed a token whose header or payload is not one valid JSON text")
		}
		var h map[string]any
		if err := json.Unmarshal(hb, &h); err != nil {
			t.Fatalf("allowed header: %v", err)
		}
		if crit, ok := h["crit"]; ok && fmt.Sprint(crit) != "[b64]" {
			t.Fatalf("allowed crit %v", crit)
		}
		if _, ok := h["crit"]; ok && h["b64"] == nil {
			t.Fatalf("allowed crit without its b64 parameter")
		}
		if b, isBool := h["b64"].(bool); isBool && !b {
			t.Fatalf("allowed b64=false")
		}
		if kid, ok := h["kid"]; ok {
			if _, isStr := kid.(string); !isStr {
				t.Fatalf("allowed kid %v", kid)
			}
		}
	})
}

// FuzzDecodeJSONObject: on JSON that is valid UTF-8 without surrogate
// escapes, a BOM or deep nesting, where Python and Go agree, DecodeJSONObject
// accepts and decodes exactly what encoding/json does (UseNumber, one object,
// nothing after it). On any input it never accepts trailing data or bytes
// that are not UTF-8 (encoded surrogates excepted).
func FuzzDecodeJSONObject(f *testing.F) {
	for _, s := range []string{
		`{}`, ` {"a":1} `, `{"a":1}x`, `{"a":1}{}`, `{"a":[1,2.5,-0,1e9,"x",true,false,null,{}]}`,
		`{"a":"\u00e9\n\"\\\/"}`, `{"a":"\ud83d\ude00"}`, `{"a":"\ud800"}`, `{"a":"\ud800\u0041"}`,
		"{\"a\":\"\xff\"}", "{\"a\":\"\xed\xa0\x80\"}", "\xef\xbb\xbf{}", `{"a":01}`, `{"a":1.}`,
		`{"a":NaN}`, `{"a":-Infinity}`, `{"a",}`, `{"a":1,}`, `[]`, `{"a":"b"`, "{\"a\":\"\x01\"}", `{"a":1,"a":2}`,
		`{"alg":"HS256","typ":"JWT"}`, `{"user_id":"x","scope":["a b"]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := DecodeJSONObject(b)
		if ok {
			if !pyUTF8Valid(b) {
				t.Fatalf("accepted %q: not UTF-8 even with surrogatepass", b)
			}
			if !json.Valid(bytes.ToValidUTF8(bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")), []byte("?"))) {
				t.Fatalf("accepted %q, which is not one JSON text", b)
			}
		}
		if !utf8.Valid(b) || bytes.HasPrefix(b, []byte("\xef\xbb\xbf")) || surrogateEscape.Match(b) ||
			bytes.Count(b, []byte("["))+bytes.Count(b, []byte("{")) > maxJSONDepth {
			return
		}
		var want any
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		wantOK := json.Valid(b) && dec.Decode(&want) == nil
		if _, isObj := want.(map[string]any); !isObj {
			wantOK = false
		}
		if ok != wantOK {
			t.Fatalf("%q: accepted = %v, encoding/json: %v", b, ok, wantOK)
		}
		if ok && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: decoded %#v, encoding/json %#v", b, got, want)
		}
	})
}

var surrogateEscape = regexp.MustCompile(`(?i)\\u[d][89a-f]`)

// pyUTF8Valid: b is UTF-8 once encoded surrogates are allowed.
func pyUTF8Valid(b []byte) bool {
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			i++
			continue
		}
		n := pyUTF8Len(b[i:])
		if n == 0 {
			return false
		}
		i += n
	}
	return true
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
