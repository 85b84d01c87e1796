package authz

import (
	"fmt"
	"strings"
	"testing"

	"github.com/gatehouse-authz/gatehouse/userstore"
)

// payloadWith is a Meet delegation payload at testNow, as raw JSON, with
// extra members (raw JSON, leading comma included) appended: raw bytes let a
// test put exactly what PyJWT's json.loads would see in the token.
func payloadWith(extra string) string {
	return fmt.Sprintf(`{"iat":%d,"exp":%d,"iss":%q,"user_id":%q,"client_id":%q,"delegated":true,"scope":"rooms:list rooms:retrieve"%s}`,
		testNow.Unix(), testNow.Unix()+3600, DefaultIssuer, activeUser, testClient, extra)
}

// payloadFor is payloadWith with user_id, client_id and scope given as raw
// JSON values (so they can hold escapes and odd bytes).
func payloadFor(userID, clientID, scope string) string {
	return fmt.Sprintf(`{"iat":%d,"exp":%d,"iss":%q,"user_id":%s,"client_id":%s,"delegated":true,"scope":%s}`,
		testNow.Unix(), testNow.Unix()+3600, DefaultIssuer, userID, clientID, scope)
}

// TestHeaderParameters: the JOSE header as PyJWT ≥ 2.12 checks it before the
// signature (crit per RFC 7515 §4.1.11 with b64 the only extension it
// understands, b64=false needing a detached payload Meet never passes, kid a
// string) and as json.loads reads it. Every refusal is "Invalid token.".
func TestHeaderParameters(t *testing.T) {
	payload := payloadWith("")
	for _, tc := range []struct {
		name, header string
		want         want
	}{
		{"plain", `{"alg":"HS256","typ":"JWT"}`, wantAllow},
		{"crit naming an unknown extension", `{"alg":"HS256","crit":["x-custom-policy"],"x-custom-policy":"require-mfa"}`, wantInvalid},
		{"crit naming a registered parameter", `{"alg":"HS256","crit":["alg"]}`, wantInvalid},
		{"crit a string", `{"alg":"HS256","crit":"b64","b64":true}`, wantInvalid},
		{"crit empty", `{"alg":"HS256","crit":[]}`, wantInvalid},
		{"crit null", `{"alg":"HS256","crit":null}`, wantInvalid},
		{"crit an object", `{"alg":"HS256","crit":{"b64":true},"b64":true}`, wantInvalid},
		{"crit with a non-string", `{"alg":"HS256","crit":["b64",1],"b64":true}`, wantInvalid},
		{"crit b64 absent from the header", `{"alg":"HS256","crit":["b64"]}`, wantInvalid},
		{"crit b64 and an unknown one", `{"alg":"HS256","crit":["b64","x"],"b64":true,"x":1}`, wantInvalid},
		{"crit b64 with b64 true", `{"alg":"HS256","crit":["b64"],"b64":true}`, wantAllow},
		{"crit b64 twice with b64 true", `{"alg":"HS256","crit":["b64","b64"],"b64":true}`, wantAllow},
		{"crit b64 with b64 false", `{"alg":"HS256","crit":["b64"],"b64":false}`, wantInvalid},
		{"b64 false without crit", `{"alg":"HS256","b64":false}`, wantInvalid},
		{"b64 0 is not false", `{"alg":"HS256","b64":0}`, wantAllow},
		{"b64 null is not false", `{"alg":"HS256","b64":null}`, wantAllow},
		{"kid a string", `{"alg":"HS256","kid":"k1"}`, wantAllow},
		{"kid a number", `{"alg":"HS256","kid":7}`, wantInvalid},
		{"kid null", `{"alg":"HS256","kid":null}`, wantInvalid},
		{"alg missing", `{"typ":"JWT"}`, wantInvalid},
		{"alg not a string", `{"alg":["HS256"]}`, wantInvalid},
		{"header not an object", `["HS256"]`, wantInvalid},
		{"header with trailing data", `{"alg":"HS256"}x`, wantInvalid},
		{"header with a second object", `{"alg":"HS256"}{"alg":"HS256"}`, wantInvalid},
		{"header with trailing whitespace", "{\"alg\":\"HS256\"} \t\r\n", wantAllow},
		{"header with leading whitespace", " \n{\"alg\":\"HS256\"}", wantAllow},
		{"header with invalid UTF-8", "{\"alg\":\"HS256\",\"x\":\"\xff\"}", wantInvalid},
		{"header with a UTF-8 BOM (json.loads strips it)", "\xef\xbb\xbf{\"alg\":\"HS256\"}", wantAllow},
		{"header alg with a lone surrogate", `{"alg":"HS256\ud800"}`, wantInvalid},
		{"header in UTF-16", "{\x00\"\x00a\x00l\x00g\x00\"\x00:\x00\"\x00H\x00S\x002\x005\x006\x00\"\x00}\x00", wantInvalid},
		{"duplicate alg, last wins", `{"alg":"none","alg":"HS256"}`, wantAllow},
		{"duplicate alg, last is wrong", `{"alg":"HS256","alg":"none"}`, wantInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			check(t, f.decide(t, "Bearer "+rawToken(t, tc.header, payload)), tc.want)
		})
	}
}

// TestPayloadBytes: the payload as PyJWT's json.loads reads it. It refuses
// data after the object and bytes that are not UTF-8 (encoded surrogates
// excepted: it decodes with surrogatepass), accepts whitespace around the
// object, a UTF-8 BOM and lone surrogate escapes. A lone surrogate in a claim
// gatehouse decides on is refused (fail closed); elsewhere it is ignored.
func TestPayloadBytes(t *testing.T) {
	const hdr = `{"alg":"HS256","typ":"JWT"}`
	q := func(s string) string { return `"` + s + `"` } // raw JSON string, no escaping
	uid, cid, scope := q(activeUser), q(testClient), q("rooms:list rooms:retrieve")
	deep := strings.Repeat("[", 40) + strings.Repeat("]", 40)
	tooDeep := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
	for _, tc := range []struct {
		name, payload string
		opaque        bool
		want          want
	}{
		{"plain", payloadWith(""), false, wantAllow},
		{"trailing data", payloadWith("") + "x", false, wantInvalid},
		{"trailing garbage after whitespace", payloadWith("") + " }", false, wantInvalid},
		{"a second object after it", payloadWith("") + `{"user_id":"x"}`, false, wantInvalid},
		{"trailing NUL", payloadWith("") + "\x00", false, wantInvalid},
		{"trailing whitespace", payloadWith("") + " \t\r\n", false, wantAllow},
		{"leading whitespace", "\r\n " + payloadWith(""), false, wantAllow},
		{"trailing form feed (not JSON whitespace)", payloadWith("") + "\f", false, wantInvalid},
		{"UTF-8 BOM (json.loads strips it)", "\xef\xbb\xbf" + payloadWith(""), false, wantAllow},
		{"two BOMs", "\xef\xbb\xbf\xef\xbb\xbf" + payloadWith(""), false, wantInvalid},
		{"invalid UTF-8 in an unused claim", payloadWith(`,"note":"` + "\xff" + `"`), false, wantInvalid},
		{"overlong UTF-8 in an unused claim", payloadWith(`,"note":"` + "\xc0\xaf" + `"`), false, wantInvalid},
		{"truncated UTF-8 in an unused claim", payloadWith(`,"note":"` + "\xe2\x82" + `"`), false, wantInvalid},
		{"code point above U+10FFFF", payloadWith(`,"note":"` + "\xf4\x90\x80\x80" + `"`), false, wantInvalid},
		{"invalid UTF-8 in user_id", payloadFor(`"`+activeUser+"\xff"+`"`, cid, scope), false, wantInvalid},
		{"invalid UTF-8 in a key", payloadWith(`,"` + "\xfe" + `":1`), false, wantInvalid},
		{"valid non-ASCII in an unused claim", payloadWith(`,"note":"é ✓ 😀"`), false, wantAllow},
		{"raw control character in a string", payloadWith(`,"note":"a` + "\x01" + `b"`), false, wantInvalid},
		{"escaped control character", payloadWith(`,"note":"a\u0001b\n"`), false, wantAllow},
		{"invalid escape", payloadWith(`,"note":"\x41"`), false, wantInvalid},
		{"short unicode escape", payloadWith(`,"note":"\u41"`), false, wantInvalid},
		{"lone surrogate escape in an unused claim", payloadWith(`,"note":"\ud800"`), false, wantAllow},
		{"lone low surrogate escape in an unused claim", payloadWith(`,"note":"x\udc00y"`), false, wantAllow},
		{"encoded surrogate bytes in an unused claim", payloadWith(`,"note":"` + "\xed\xa0\x80" + `"`), false, wantAllow},
		{"surrogate pair escape", payloadWith(`,"note":"\ud83d\ude00"`), false, wantAllow},
		{"lone surrogate escape in user_id", payloadFor(`"`+activeUser+`\ud800"`, cid, scope), false, wantClaims},
		{"lone surrogate escape in client_id", payloadFor(uid, `"meet-app\udfff"`, scope), false, wantClaims},
		{"encoded surrogate bytes in client_id", payloadFor(uid, `"meet-app`+"\xed\xbf\xbf"+`"`, scope), false, wantClaims},
		{"lone surrogate escape in scope", payloadFor(uid, cid, `"rooms:list \ud800"`), false, wantClaims},
		{"lone surrogate escape in a scope list", payloadFor(uid, cid, `["rooms:list","\ud800"]`), false, wantClaims},
		{"lone surrogate escape in iss", payloadWith(`,"iss":"lasuite-meet\ud800"`), false, wantInvalid},
		{"NaN in an unused claim", payloadWith(`,"note":NaN`), false, wantInvalid},
		{"Infinity exp", payloadWith(`,"exp":Infinity`), false, wantInvalid},
		{"leading zero", payloadWith(`,"note":01`), false, wantInvalid},
		{"trailing comma", payloadWith(`,`), false, wantInvalid},
		{"nested arrays", payloadWith(`,"note":` + deep), false, wantAllow},
		{"absurdly nested arrays", payloadWith(`,"note":` + tooDeep), false, wantInvalid},
		{"duplicate delegated, last wins", payloadWith(`,"delegated":false,"delegated":true`), false, wantAllow},
		{"duplicate delegated, last is false", payloadWith(`,"delegated":false`), false, wantType},
		{"payload in UTF-16", "{\x00}\x00", false, wantInvalid},
		{"empty payload", "", false, wantInvalid},
		{"payload a string", `"x"`, false, wantInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			check(t, f.decide(t, "Bearer "+rawToken(t, hdr, tc.payload)), tc.want)
		})
	}
}

// TestLoneSurrogateUserIDNotConfused: a lone surrogate must not turn into
// U+FFFD and so name another user. Meet could not look such an id up; a
// directory that holds "ann\uFFFD" must not be asked for it.
func TestLoneSurrogateUserIDNotConfused(t *testing.T) {
	const hdr = `{"alg":"HS256"}`
	f := newFixture(t, func(o *Options) { o.UserIDFormat = IDFormatOpaque })
	f.dir.set(userstore.User, "ann\ufffd", userstore.Active)
	f.dir.set(userstore.User, "ann\U0001F600", userstore.Active)
	cid, scope := `"`+testClient+`"`, `"rooms:list"`

	check(t, f.decide(t, "Bearer "+rawToken(t, hdr, payloadFor(`"ann\ud800"`, cid, scope))), wantClaims)
	check(t, f.decide(t, "Bearer "+rawToken(t, hdr, payloadFor(`"ann`+"\xed\xa0\x80"+`"`, cid, scope))), wantClaims)
	if calls := f.dir.callLog(); len(calls) != 0 {
		t.Fatalf("directory asked %v for an id with a lone surrogate", calls)
	}
	// A surrogate pair escape is one character, as in Python.
	d := f.decide(t, "Bearer "+rawToken(t, hdr, payloadFor(`"ann\ud83d\ude00"`, cid, scope)))
	check(t, d, wantAllow)
	if d.Identity.UserID != "ann\U0001F600" {
		t.Fatalf("user id = %q, want the joined pair", d.Identity.UserID)
	}
}

// TestScopeClaimShapes: the scope claim as Meet's HasRequiredRoomScope reads
// it. A falsy claim is "no scope"; a string is split on whitespace; a list is
// taken as is, each element one scope, so an element holding several words
// (or anything but a string) grants nothing and is left out of x-auth-scope.
func TestScopeClaimShapes(t *testing.T) {
	noScope := want{Deny, 403, ReasonNoScope, "Insufficient permissions.", `Bearer error="insufficient_scope", scope="rooms:list"`}
	missing := func(s string) want {
		return want{Deny, 403, ReasonMissingScope, "Insufficient permissions. Required scope: " + s, `Bearer error="insufficient_scope", scope="` + s + `"`}
	}
	for _, tc := range []struct {
		name      string
		scope     any
		required  string
		want      want
		wantScope string // x-auth-scope on allow
	}{
		{"one list element with two words", []string{"rooms:list rooms:create"}, "rooms:list", missing("rooms:list"), ""},
		{"same, second word", []string{"rooms:list rooms:create"}, "rooms:create", missing("rooms:create"), ""},
		{"multi-word element beside a good one", []any{"rooms:list rooms:create", "rooms:retrieve"}, "rooms:retrieve", wantAllow, "rooms:retrieve"},
		{"multi-word element not granted beside a good one", []any{"rooms:list rooms:create", "rooms:retrieve"}, "rooms:list", missing("rooms:list"), "rooms:retrieve"},
		{"element with surrounding spaces", []string{" rooms:list "}, "rooms:list", missing("rooms:list"), ""},
		{"element with a tab", []string{"rooms:list\tadmin", "x"}, "rooms:list", missing("rooms:list"), "x"},
		{"element with a Unicode space", []string{"rooms:list\u00a0admin"}, "rooms:list", missing("rooms:list"), ""},
		{"list of one empty string (truthy)", []string{""}, "rooms:list", missing("rooms:list"), ""},
		{"list with a non-string beside the scope", []any{7, "rooms:list"}, "rooms:list", wantAllow, "rooms:list"},
		{"list with a null", []any{nil}, "rooms:list", missing("rooms:list"), ""},
		{"list of words", []string{"rooms:create", "rooms:list"}, "rooms:list", wantAllow, "rooms:create rooms:list"},
		{"empty list", []string{}, "rooms:list", noScope, ""},
		{"string of spaces (truthy, no words)", "   ", "rooms:list", missing("rooms:list"), ""},
		{"empty string", "", "rooms:list", noScope, ""},
		{"false", false, "rooms:list", noScope, ""},
		{"zero", 0, "rooms:list", noScope, ""},
		{"null", nil, "rooms:list", noScope, ""},
		{"an object never grants", map[string]any{"rooms:list": true}, "rooms:list", missing("rooms:list"), ""},
		{"string split on whitespace", "rooms:create\trooms:list", "rooms:list", wantAllow, "rooms:create rooms:list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(o *Options) { o.Policy = stubPolicy(Rule{Scope: tc.required}) })
			claims := with(meetClaims(), "scope", tc.scope)
			if tc.scope == nil {
				claims = with(meetClaims(), "scope", nil)
			}
			d := f.decide(t, "Bearer "+sign(t, claims))
			check(t, d, tc.want)
			if d.Identity.Scope != tc.wantScope {
				t.Fatalf("identity scope = %q, want %q", d.Identity.Scope, tc.wantScope)
			}
		})
	}
}
