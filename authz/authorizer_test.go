package authz

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatehouse-authz/gatehouse/userstore"
)

// want is the part of a decision a table row pins down.
type want struct {
	result    Result
	status    int
	reason    Reason
	message   string
	challenge string // the full WWW-Authenticate value ("" for none)
}

var (
	wantMissing = want{Deny, 401, ReasonMissingCredentials, "Authentication credentials were not provided.", `Bearer`}
	wantHeader  = want{Deny, 401, ReasonInvalidHeader, "Invalid token header.",
		`Bearer error="invalid_request", error_description="Invalid token header."`}
	wantEncoding = want{Deny, 401, ReasonInvalidEncoding, "Invalid token encoding.",
		`Bearer error="invalid_request", error_description="Invalid token encoding."`}
	wantExpired = want{Deny, 401, ReasonTokenExpired, "Token expired.",
		`Bearer error="invalid_token", error_description="Token expired."`}
	wantInvalid = want{Deny, 401, ReasonInvalidToken, "Invalid token.",
		`Bearer error="invalid_token", error_description="Invalid token."`}
	wantClaims = want{Deny, 401, ReasonInvalidClaims, "Invalid token claims.",
		`Bearer error="invalid_token", error_description="Invalid token claims."`}
	wantType = want{Deny, 401, ReasonInvalidTokenType, "Invalid token type.",
		`Bearer error="invalid_token", error_description="Invalid token type."`}
	wantAppNotFound = want{Deny, 401, ReasonApplicationNotFound, "Application not found.",
		`Bearer error="invalid_token", error_description="Application not found."`}
	wantAppDisabled = want{Deny, 401, ReasonApplicationDisabled, "Application is disabled.",
		`Bearer error="invalid_token", error_description="Application is disabled."`}
	wantUserNotFound = want{Deny, 401, ReasonUserNotFound, "User not found.",
		`Bearer error="invalid_token", error_description="User not found."`}
	wantUserDisabled = want{Deny, 401, ReasonUserDisabled, "User account is disabled.",
		`Bearer error="invalid_token", error_description="User account is disabled."`}
	wantAllow = want{result: Allow, status: 200, reason: ReasonAllowed}
)

func check(t *testing.T, got Decision, w want) {
	t.Helper()
	if got.Result != w.result || got.Status != w.status || got.Reason != w.reason || got.Message != w.message {
		t.Fatalf("decision = {%v %d %s %q}, want {%v %d %s %q}",
			got.Result, got.Status, got.Reason, got.Message, w.result, w.status, w.reason, w.message)
	}
	if h := got.ChallengeHeader(""); h != w.challenge {
		t.Fatalf("WWW-Authenticate = %q, want %q", h, w.challenge)
	}
	if got.Result != Allow {
		wantBody := fmt.Sprintf(`{"detail":%q}`, w.message)
		if string(got.Body()) != wantBody {
			t.Fatalf("body = %s, want %s", got.Body(), wantBody)
		}
	}
}

// TestCredentials covers docs/design.md steps 1–3: the Authorization header.
func TestCredentials(t *testing.T) {
	f := newFixture(t, nil)
	good := sign(t, meetClaims())
	for _, tc := range []struct {
		name, header string
		want         want
	}{
		{"absent", "", wantMissing},
		{"only whitespace", " \t ", wantMissing},
		{"basic scheme", "Basic dXNlcjpwYXNz", wantMissing},
		{"token without scheme", good, wantMissing},
		{"bearer prefix glued", "Bearer" + good, wantMissing},
		{"non-ASCII space is not a separator", "Bearer\u00a0" + good, wantMissing},
		{"unicode look-alike scheme", "Bearer\u0301 " + good, wantMissing},
		{"scheme alone", "Bearer", wantHeader},
		{"scheme and spaces", "Bearer   ", wantHeader},
		{"three words", "Bearer " + good + " extra", wantHeader},
		{"invalid utf-8 token", "Bearer \xff\xfe\xfd", wantEncoding},
		{"lower case scheme", "bearer " + good, wantAllow},
		{"upper case scheme", "BEARER " + good, wantAllow},
		{"tab separator", "Bearer\t" + good, wantAllow},
		{"runs of whitespace around", "  Bearer \t\r\n " + good + " \t", wantAllow},
		{"vertical tab and form feed are whitespace", "Bearer\v\f" + good, wantAllow},
		{"not a jwt", "Bearer abc", wantInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check(t, f.decide(t, tc.header), tc.want)
		})
	}
}

// TestJWT covers docs/design.md#token-verification (PyJWT's semantics), steps 4 and 5.
func TestJWT(t *testing.T) {
	now := testNow.Unix() // testNow is now+0.5s
	base := meetClaims()
	for _, tc := range []struct {
		name   string
		token  func(t *testing.T) string
		mutate func(*Options)
		want   want
	}{
		{name: "valid Meet token", token: func(t *testing.T) string { return sign(t, base) }, want: wantAllow},
		{name: "wrong secret", token: func(t *testing.T) string {
			return signWith(t, jwt.SigningMethodHS256, []byte("another-secret"), base)
		}, want: wantInvalid},
		{name: "alg none", token: func(t *testing.T) string {
			return signWith(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, base)
		}, want: wantInvalid},
		{name: "alg none with HS256 signature appended", token: func(t *testing.T) string {
			good := sign(t, base)
			none := signWith(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, base)
			return none + good[strings.LastIndexByte(good, '.')+1:]
		}, want: wantInvalid},
		{name: "other HMAC algorithm with the same key", token: func(t *testing.T) string {
			return signWith(t, jwt.SigningMethodHS512, testSecret, base)
		}, want: wantInvalid},
		{name: "HS512 configured accepts HS512", token: func(t *testing.T) string {
			return signWith(t, jwt.SigningMethodHS512, testSecret, base)
		}, mutate: func(o *Options) { o.JWT.Algorithm = "HS512" }, want: wantAllow},
		{name: "HS512 configured refuses HS256", token: func(t *testing.T) string { return sign(t, base) },
			mutate: func(o *Options) { o.JWT.Algorithm = "HS512" }, want: wantInvalid},
		{name: "alg header relabelled", token: func(t *testing.T) string {
			// Signature over a header that says HS256 but names RS256: the
			// signature check fails because the signing input changed.
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, base)
			tok.Header["alg"] = "RS256"
			s, err := tok.SignedString(testSecret)
			if err == nil {
				return s
			}
			return "x.y.z"
		}, want: wantInvalid},
		{name: "two segments", token: func(t *testing.T) string {
			s := sign(t, base)
			return s[:strings.LastIndexByte(s, '.')]
		}, want: wantInvalid},
		{name: "four segments", token: func(t *testing.T) string { return sign(t, base) + ".x" }, want: wantInvalid},
		{name: "garbage signature", token: func(t *testing.T) string {
			s := sign(t, base)
			return s[:strings.LastIndexByte(s, '.')+1] + "!!!"
		}, want: wantInvalid},
		{name: "payload is not an object", token: func(t *testing.T) string {
			return rawToken(t, `{"alg":"HS256","typ":"JWT"}`, `[1,2,3]`)
		}, want: wantInvalid},
		{name: "padded segments are accepted like PyJWT", token: func(t *testing.T) string {
			return rawToken(t, `{"alg":"HS256"}`, `{"iat":1800000000,"exp":1800003600,"iss":"lasuite-meet","user_id":"`+activeUser+`","client_id":"meet-app","delegated":true}`, "pad")
		}, want: wantAllow},

		// exp: expired when floor(exp) <= now.
		{name: "exp equal to now (floored clock)", token: func(t *testing.T) string { return sign(t, with(base, "exp", now)) }, want: wantExpired},
		{name: "exp equal to a whole-second clock", token: func(t *testing.T) string { return sign(t, with(base, "exp", now)) },
			mutate: func(o *Options) { o.Now = func() time.Time { return time.Unix(now, 0) } }, want: wantExpired},
		{name: "exp a second after a whole-second clock", token: func(t *testing.T) string { return sign(t, with(base, "exp", now+1)) },
			mutate: func(o *Options) { o.Now = func() time.Time { return time.Unix(now, 0) } }, want: wantAllow},
		{name: "exp one second ahead", token: func(t *testing.T) string { return sign(t, with(base, "exp", now+1)) }, want: wantAllow},
		{name: "fractional exp is floored", token: func(t *testing.T) string { return sign(t, with(base, "exp", float64(now)+0.9)) }, want: wantExpired},
		{name: "exp in the past", token: func(t *testing.T) string { return sign(t, with(base, "exp", now-10)) }, want: wantExpired},
		{name: "expired within leeway", token: func(t *testing.T) string { return sign(t, with(base, "exp", now-10)) },
			mutate: func(o *Options) { o.JWT.Leeway = 30 * time.Second }, want: wantAllow},
		{name: "exp not a number", token: func(t *testing.T) string { return sign(t, with(base, "exp", fmt.Sprint(now+100))) }, want: wantInvalid},
		{name: "no exp accepted by default", token: func(t *testing.T) string { return sign(t, with(base, "exp", nil)) }, want: wantAllow},
		{name: "no exp refused when required", token: func(t *testing.T) string { return sign(t, with(base, "exp", nil)) },
			mutate: func(o *Options) { o.JWT.RequireExp = true }, want: wantInvalid},

		// iat: numeric and not in the future.
		{name: "iat in the future", token: func(t *testing.T) string { return sign(t, with(base, "iat", now+60)) }, want: wantInvalid},
		{name: "iat in the future within leeway", token: func(t *testing.T) string { return sign(t, with(base, "iat", now+60)) },
			mutate: func(o *Options) { o.JWT.Leeway = time.Minute }, want: wantAllow},
		{name: "iat is a string", token: func(t *testing.T) string { return sign(t, with(base, "iat", "1800000000")) }, want: wantInvalid},
		{name: "iat is a boolean", token: func(t *testing.T) string { return sign(t, with(base, "iat", true)) }, want: wantInvalid},
		{name: "fractional iat", token: func(t *testing.T) string { return sign(t, with(base, "iat", float64(now)+0.3)) }, want: wantAllow},
		{name: "future iat beats expiry (PyJWT order)", token: func(t *testing.T) string {
			return sign(t, with(base, "iat", now+60, "exp", now-60))
		}, want: wantInvalid},

		// nbf.
		{name: "nbf in the future", token: func(t *testing.T) string { return sign(t, with(base, "nbf", now+60)) }, want: wantInvalid},
		{name: "nbf in the past", token: func(t *testing.T) string { return sign(t, with(base, "nbf", now-60)) }, want: wantAllow},
		{name: "nbf not a number", token: func(t *testing.T) string { return sign(t, with(base, "nbf", "soon")) }, want: wantInvalid},

		// iss: required and exact when configured.
		{name: "iss missing", token: func(t *testing.T) string { return sign(t, with(base, "iss", nil)) }, want: wantInvalid},
		{name: "iss different", token: func(t *testing.T) string { return sign(t, with(base, "iss", "someone-else")) }, want: wantInvalid},
		{name: "iss differs only in case", token: func(t *testing.T) string { return sign(t, with(base, "iss", "LaSuite-Meet")) }, want: wantInvalid},
		{name: "iss not a string", token: func(t *testing.T) string { return sign(t, with(base, "iss", []string{DefaultIssuer})) }, want: wantInvalid},
		{name: "no issuer configured accepts any iss", token: func(t *testing.T) string { return sign(t, with(base, "iss", "x")) },
			mutate: func(o *Options) { o.JWT.Issuer = "" }, want: wantAllow},
		{name: "expired reported before wrong iss", token: func(t *testing.T) string {
			return sign(t, with(base, "iss", "x", "exp", now-1))
		}, want: wantExpired},

		// aud without a configured audience.
		{name: "aud refused when none configured", token: func(t *testing.T) string { return sign(t, with(base, "aud", "api")) }, want: wantInvalid},
		{name: "aud list refused when none configured", token: func(t *testing.T) string { return sign(t, with(base, "aud", []string{"api"})) }, want: wantInvalid},
		{name: "empty aud string ignored", token: func(t *testing.T) string { return sign(t, with(base, "aud", "")) }, want: wantAllow},
		{name: "empty aud list ignored", token: func(t *testing.T) string { return sign(t, with(base, "aud", []string{})) }, want: wantAllow},
		{name: "expired reported before wrong aud", token: func(t *testing.T) string {
			return sign(t, with(base, "aud", "api", "exp", now-1))
		}, want: wantExpired},

		// aud with a configured audience.
		{name: "aud required when configured", token: func(t *testing.T) string { return sign(t, base) },
			mutate: func(o *Options) { o.JWT.Audience = "meet-api" }, want: wantInvalid},
		{name: "aud equal", token: func(t *testing.T) string { return sign(t, with(base, "aud", "meet-api")) },
			mutate: func(o *Options) { o.JWT.Audience = "meet-api" }, want: wantAllow},
		{name: "aud list containing it", token: func(t *testing.T) string { return sign(t, with(base, "aud", []string{"x", "meet-api"})) },
			mutate: func(o *Options) { o.JWT.Audience = "meet-api" }, want: wantAllow},
		{name: "aud list without it", token: func(t *testing.T) string { return sign(t, with(base, "aud", []string{"x", "y"})) },
			mutate: func(o *Options) { o.JWT.Audience = "meet-api" }, want: wantInvalid},
		{name: "aud list with a non-string", token: func(t *testing.T) string { return sign(t, with(base, "aud", []any{"meet-api", 1})) },
			mutate: func(o *Options) { o.JWT.Audience = "meet-api" }, want: wantInvalid},
		{name: "aud other", token: func(t *testing.T) string { return sign(t, with(base, "aud", "other")) },
			mutate: func(o *Options) { o.JWT.Audience = "meet-api" }, want: wantInvalid},
		{name: "aud number", token: func(t *testing.T) string { return sign(t, with(base, "aud", 7)) },
			mutate: func(o *Options) { o.JWT.Audience = "meet-api" }, want: wantInvalid},

		// sub and jti must be strings when present.
		{name: "sub string", token: func(t *testing.T) string { return sign(t, with(base, "sub", "x")) }, want: wantAllow},
		{name: "sub number", token: func(t *testing.T) string { return sign(t, with(base, "sub", 42)) }, want: wantInvalid},
		{name: "jti string", token: func(t *testing.T) string { return sign(t, with(base, "jti", "id-1")) }, want: wantAllow},
		{name: "jti object", token: func(t *testing.T) string { return sign(t, with(base, "jti", map[string]any{"a": 1})) }, want: wantInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.mutate)
			check(t, f.decide(t, "Bearer "+tc.token(t)), tc.want)
		})
	}
}

// TestMeetClaims covers steps 6–8 and the narrowing of Python truthiness (docs/design.md#meet-claims).
func TestMeetClaims(t *testing.T) {
	base := meetClaims()
	for _, tc := range []struct {
		name   string
		claims jwt.MapClaims
		want   want
	}{
		{"user_id missing", with(base, "user_id", nil), wantClaims},
		{"user_id empty", with(base, "user_id", ""), wantClaims},
		{"user_id a number", with(base, "user_id", 12), wantClaims},
		{"client_id missing", with(base, "client_id", nil), wantClaims},
		{"client_id empty", with(base, "client_id", ""), wantClaims},
		{"client_id a list", with(base, "client_id", []string{"a"}), wantClaims},
		{"user_id checked before client_id", with(base, "user_id", nil, "client_id", nil, "delegated", nil), wantClaims},
		{"delegated missing", with(base, "delegated", nil), wantType},
		{"delegated false", with(base, "delegated", false), wantType},
		{"delegated string true", with(base, "delegated", "true"), wantType},
		{"delegated string false (truthy in Python)", with(base, "delegated", "false"), wantType},
		{"delegated 1 (truthy in Python)", with(base, "delegated", 1), wantType},
		{"claims checked before the directory", with(base, "user_id", unknownUser, "delegated", false), wantType},
		{"user_id that would split a header", with(base, "user_id", activeUser+"\r\nx-auth-user-id: admin"), wantClaims},
		{"client_id with a NUL", with(base, "client_id", "app\x00"), wantClaims},
		{"scope with a control character", with(base, "scope", "rooms:list \x01admin"), wantClaims},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			check(t, f.decide(t, "Bearer "+sign(t, tc.claims)), tc.want)
			if calls := f.dir.callLog(); len(calls) != 0 {
				t.Fatalf("directory consulted for a token with bad claims: %v", calls)
			}
		})
	}
}

// TestDirectory covers steps 9–11 and 15.
func TestDirectory(t *testing.T) {
	base := meetClaims()
	for _, tc := range []struct {
		name      string
		claims    jwt.MapClaims
		checkApps bool
		want      want
		calls     []string
	}{
		{"active user", base, false, wantAllow, []string{"user:" + activeUser}},
		{"unknown user", with(base, "user_id", unknownUser), false, wantUserNotFound, []string{"user:" + unknownUser}},
		{"inactive user", with(base, "user_id", inactiveUser), false, wantUserDisabled, []string{"user:" + inactiveUser}},
		{"apps unchecked by default", with(base, "client_id", "nobody"), false, wantAllow, []string{"user:" + activeUser}},
		{"known app", base, true, wantAllow, []string{"app:" + testClient, "user:" + activeUser}},
		{"unknown app", with(base, "client_id", "nobody"), true, wantAppNotFound, []string{"app:nobody"}},
		{"disabled app", with(base, "client_id", "disabled-app"), true, wantAppDisabled, []string{"app:disabled-app"}},
		{"app before user", with(base, "client_id", "nobody", "user_id", unknownUser), true, wantAppNotFound, []string{"app:nobody"}},
		{"inactive user with active app", with(base, "user_id", inactiveUser), true, wantUserDisabled,
			[]string{"app:" + testClient, "user:" + inactiveUser}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(o *Options) { o.CheckApplications = tc.checkApps })
			d := f.decide(t, "Bearer "+sign(t, tc.claims))
			check(t, d, tc.want)
			if got := f.dir.callLog(); fmt.Sprint(got) != fmt.Sprint(tc.calls) {
				t.Fatalf("directory calls = %v, want %v", got, tc.calls)
			}
		})
	}
}

func TestAllowCarriesIdentity(t *testing.T) {
	f := newFixture(t, nil)
	d := f.decide(t, "Bearer "+sign(t, with(meetClaims(), "scope", "  rooms:list \t rooms:create ")))
	check(t, d, wantAllow)
	want := Identity{UserID: activeUser, ClientID: testClient, Scope: "rooms:list rooms:create"}
	if d.Identity != want {
		t.Fatalf("identity = %+v, want %+v", d.Identity, want)
	}
	if d.ChallengeHeader("r") != "" {
		t.Fatalf("an allow carries no challenge")
	}
}

func TestDenyCarriesKnownIdentity(t *testing.T) {
	f := newFixture(t, nil)
	d := f.decide(t, "Bearer "+sign(t, with(meetClaims(), "user_id", inactiveUser)))
	if d.Identity.UserID != inactiveUser || d.Identity.ClientID != testClient {
		t.Fatalf("deny identity = %+v, want the token's user and client for access logs", d.Identity)
	}
}

// TestUserIDNormalisation covers docs/design.md#meet-claims: UUID spellings are normalised before
// lookup; a non-UUID is an unknown user and never reaches the directory.
func TestUserIDNormalisation(t *testing.T) {
	upper := strings.ToUpper(activeUser)
	for _, tc := range []struct {
		name, id string
		format   IDFormat
		want     want
		lookup   string // "" when the directory must not be asked
	}{
		{"canonical", activeUser, IDFormatUUID, wantAllow, activeUser},
		{"upper case", upper, IDFormatUUID, wantAllow, activeUser},
		{"no dashes", strings.ReplaceAll(activeUser, "-", ""), IDFormatUUID, wantAllow, activeUser},
		{"braces", "{" + upper + "}", IDFormatUUID, wantAllow, activeUser},
		{"urn", "urn:uuid:" + activeUser, IDFormatUUID, wantAllow, activeUser},
		{"not a uuid", "alice@example.com", IDFormatUUID, wantUserNotFound, ""},
		{"too short", activeUser[:35], IDFormatUUID, wantUserNotFound, ""},
		{"non-hex digit", "g" + activeUser[1:], IDFormatUUID, wantUserNotFound, ""},
		{"opaque ids are used as they are", upper, IDFormatOpaque, wantUserNotFound, upper},
		{"opaque canonical", activeUser, IDFormatOpaque, wantAllow, activeUser},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(o *Options) { o.UserIDFormat = tc.format })
			check(t, f.decide(t, "Bearer "+sign(t, with(meetClaims(), "user_id", tc.id))), tc.want)
			calls := f.dir.callLog()
			switch {
			case tc.lookup == "" && len(calls) != 0:
				t.Fatalf("directory asked %v for a non-UUID id", calls)
			case tc.lookup != "" && (len(calls) != 1 || calls[0] != "user:"+tc.lookup):
				t.Fatalf("directory calls = %v, want [user:%s]", calls, tc.lookup)
			}
		})
	}
}

func TestNormalizeUUID(t *testing.T) {
	const canon = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
	for in, want := range map[string]string{
		canon:                                         canon,
		strings.ToUpper(canon):                        canon,
		"0A1B2C3D4E5F4A6B8C7D9E0F1A2B3C4D":            canon,
		"{" + canon + "}":                             canon,
		"urn:uuid:" + canon:                           canon,
		"0a1b-2c3d4e5f-4a6b-8c7d-9e0f1a2b3c4d":        canon, // Python drops every dash
		"":                                            "",
		"0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4":         "",
		"0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4dd":       "",
		"0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4z":        "",
		" 0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d":       "",
		"+a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d":        "",
		strings.Repeat("-", 100) + canon:              "",
		"0a1b2c3d_4e5f_4a6b_8c7d_9e0f1a2b3c4d":        "",
		"urn:uuid:{0A1B2C3D4E5F4A6B8C7D9E0F1A2B3C4D}": canon,
	} {
		got, ok := NormalizeUUID(in)
		if ok != (want != "") || got != want {
			t.Errorf("NormalizeUUID(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

// TestFailClosed: every directory failure is an Unavailable 503, never an allow.
func TestFailClosed(t *testing.T) {
	token := "Bearer " + sign(t, meetClaims())
	t.Run("directory error", func(t *testing.T) {
		f := newFixture(t, func(o *Options) { o.RetryAfter = 3 * time.Second })
		f.dir.err = fmt.Errorf("redis: %w", userstore.ErrUnavailable)
		d := f.decide(t, token)
		if d.Allowed() || d.Result != Unavailable || d.Status != http.StatusServiceUnavailable ||
			d.Reason != ReasonDirectoryError || d.RetryAfterSeconds != 3 {
			t.Fatalf("decision = %+v, want an unavailable 503 with Retry-After 3", d)
		}
		if d.ChallengeHeader("") != "" {
			t.Fatalf("a 503 carries no Bearer challenge")
		}
	})
	t.Run("application lookup error", func(t *testing.T) {
		f := newFixture(t, func(o *Options) { o.CheckApplications = true })
		f.dir.err = errBoom
		if d := f.decide(t, token); d.Allowed() || d.Result != Unavailable {
			t.Fatalf("decision = %+v, want unavailable", d)
		}
	})
	for name, ctx := range map[string]func() (context.Context, context.CancelFunc){
		"cancelled": func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		},
		"deadline exceeded": func() (context.Context, context.CancelFunc) {
			return context.WithDeadline(context.Background(), time.Unix(1, 0))
		},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, nil)
			c, cancel := ctx()
			defer cancel()
			d := f.a.Decide(c, &Request{Authorization: token})
			if d.Allowed() || d.Status != http.StatusServiceUnavailable {
				t.Fatalf("decision = %+v, want 503", d)
			}
		})
	}
	t.Run("zero decision denies", func(t *testing.T) {
		var d Decision
		if d.Allowed() || d.Result.String() != "deny" {
			t.Fatalf("the zero Decision must deny")
		}
	})
	t.Run("New refuses bad options", func(t *testing.T) {
		for name, o := range map[string]Options{
			"no secret":     {JWT: JWTConfig{Algorithm: "HS256"}, Directory: newFakeDir()},
			"alg none":      {JWT: JWTConfig{Secret: testSecret, Algorithm: "none"}, Directory: newFakeDir()},
			"alg RS256":     {JWT: JWTConfig{Secret: testSecret, Algorithm: "RS256"}, Directory: newFakeDir()},
			"no directory":  {JWT: testConfig()},
			"negative skew": {JWT: JWTConfig{Secret: testSecret, Leeway: -time.Second}, Directory: newFakeDir()},
		} {
			_, err := New(o)
			if err == nil {
				t.Errorf("%s: New succeeded", name)
				continue
			}
			if strings.Contains(err.Error(), string(testSecret)) {
				t.Errorf("%s: error leaks the secret: %v", name, err)
			}
		}
	})
}

// TestTokenCacheRechecks: a cached token is still checked against the clock
// and the directory on every request.
func TestTokenCacheRechecks(t *testing.T) {
	f := newFixture(t, nil)
	token := "Bearer " + sign(t, with(meetClaims(), "exp", testNow.Unix()+10))
	check(t, f.decide(t, token), wantAllow)
	check(t, f.decide(t, token), wantAllow)
	f.dir.set(userstore.User, activeUser, userstore.Inactive)
	check(t, f.decide(t, token), wantUserDisabled)
	f.dir.set(userstore.User, activeUser, userstore.Active)
	f.clock.Set(testNow.Add(9 * time.Second))
	check(t, f.decide(t, token), wantAllow)
	f.clock.Set(testNow.Add(10 * time.Second)) // floor(exp) == floor(now)+? now = exp+0.5
	check(t, f.decide(t, token), wantExpired)
	if n := len(f.dir.callLog()); n != 4 {
		t.Fatalf("directory asked %d times for 5 decisions (one expired), want 4", n)
	}
}

func TestTokenCacheRechecksNotBefore(t *testing.T) {
	// A token whose nbf lies ahead is refused, then accepted once the clock
	// passes nbf: failures are never cached.
	f := newFixture(t, nil)
	token := "Bearer " + sign(t, with(meetClaims(), "nbf", testNow.Unix()+5))
	check(t, f.decide(t, token), wantInvalid)
	f.clock.Set(testNow.Add(5 * time.Second))
	check(t, f.decide(t, token), wantAllow)
}

func TestTokenCacheBounded(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.TokenCacheSize = 16 })
	for i := range 200 {
		check(t, f.decide(t, "Bearer "+sign(t, with(meetClaims(), "jti", fmt.Sprint(i)))), wantAllow)
	}
	if n := f.a.tokens.Load().Len(); n > 16 {
		t.Fatalf("token cache holds %d entries, bound is 16", n)
	}
}

// TestTokenCacheExact: once a token is cached, a token that differs from it in
// any way gets the decision it would get from a cold cache. The cache is keyed
// by a digest of the token, so this is what proves the digest covers every
// byte: header, payload and signature.
func TestTokenCacheExact(t *testing.T) {
	cached := sign(t, meetClaims())
	head, rest, _ := strings.Cut(cached, ".")
	payload, sig, _ := strings.Cut(rest, ".")
	other := sign(t, with(meetClaims(), "user_id", inactiveUser))
	_, otherRest, _ := strings.Cut(other, ".")
	otherPayload, _, _ := strings.Cut(otherRest, ".")
	flip := func(s string, i int) string { // change one base64url character
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}

	for name, tc := range map[string]struct {
		token string
		want  want
	}{
		"the cached token":                     {cached, wantAllow},
		"another user's payload, cached sig":   {head + "." + otherPayload + "." + sig, wantInvalid},
		"one payload character changed":        {head + "." + flip(payload, len(payload)/2) + "." + sig, wantInvalid},
		"one signature character changed":      {head + "." + payload + "." + flip(sig, 5), wantInvalid},
		"signature dropped":                    {head + "." + payload + ".", wantInvalid},
		"signature segment missing":            {head + "." + payload, wantInvalid},
		"a fourth segment":                     {cached + "." + sig, wantInvalid},
		"padded payload":                       {head + "." + payload + "=" + "." + sig, wantInvalid},
		"another user's token, validly signed": {other, wantUserDisabled},
	} {
		t.Run(name, func(t *testing.T) {
			cold := newFixture(t, func(o *Options) { o.TokenCacheSize = -1 })
			warm := newFixture(t, nil)
			check(t, warm.decide(t, "Bearer "+cached), wantAllow)
			if warm.a.tokens.Load().Len() != 1 {
				t.Fatalf("token cache holds %d entries after one valid token, want 1", warm.a.tokens.Load().Len())
			}

			want := cold.decide(t, "Bearer "+tc.token)
			got := warm.decide(t, "Bearer "+tc.token)
			if got.Result != want.Result || got.Reason != want.Reason || got.Status != want.Status || got.Identity != want.Identity {
				t.Fatalf("with the cache warm: %v/%s/%d %+v; cold: %v/%s/%d %+v",
					got.Result, got.Reason, got.Status, got.Identity, want.Result, want.Reason, want.Status, want.Identity)
			}
			check(t, got, tc.want)
		})
	}
}

// stubPolicy returns a fixed rule: the seam issue 3's route tables plug into.
type stubPolicy Rule

func (p stubPolicy) Match(*Request) Rule { return Rule(p) }

func TestPolicySeam(t *testing.T) {
	good := "Bearer " + sign(t, meetClaims()) // scopes: rooms:list rooms:retrieve
	noScope := "Bearer " + sign(t, with(meetClaims(), "scope", nil))
	listScope := "Bearer " + sign(t, with(meetClaims(), "scope", []string{"rooms:create", "other"}))
	inactive := "Bearer " + sign(t, with(meetClaims(), "user_id", inactiveUser))
	scope403 := func(msg, s string) want {
		r := ReasonMissingScope
		if msg == "Insufficient permissions." {
			r = ReasonNoScope
		}
		return want{Deny, 403, r, msg, `Bearer error="insufficient_scope", scope="` + s + `"`}
	}
	for _, tc := range []struct {
		name   string
		rule   Rule
		header string
		want   want
	}{
		{"public needs nothing", Rule{Public: true}, "", want{result: Allow, status: 200, reason: ReasonPublic}},
		{"public ignores a bad token", Rule{Public: true}, "Bearer x", want{result: Allow, status: 200, reason: ReasonPublic}},
		{"scope present", Rule{Scope: "rooms:list"}, good, wantAllow},
		{"scope in a JSON list", Rule{Scope: "rooms:create"}, listScope, wantAllow},
		{"scope absent", Rule{Scope: "rooms:create"}, good, scope403("Insufficient permissions. Required scope: rooms:create", "rooms:create")},
		{"scope case differs", Rule{Scope: "Rooms:List"}, good, scope403("Insufficient permissions. Required scope: Rooms:List", "Rooms:List")},
		{"no scope claim", Rule{Scope: "rooms:list"}, noScope, scope403("Insufficient permissions.", "rooms:list")},
		{"unknown action", Rule{UnknownAction: true}, good, want{Deny, 403, ReasonUnknownAction, "Insufficient permissions. Unknown action.", ""}},
		{"deny route", Rule{Deny: true}, good, want{Deny, 403, ReasonRouteDenied, "Insufficient permissions.", ""}},
		{"authentication before permission", Rule{UnknownAction: true}, "", wantMissing},
		{"inactive user with the right scope", Rule{Scope: "rooms:list"}, inactive, wantUserDisabled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(o *Options) { o.Policy = stubPolicy(tc.rule) })
			d := f.decide(t, tc.header)
			check(t, d, tc.want)
			if tc.rule.Public && (d.Identity != Identity{}) {
				t.Fatalf("a public allow carries identity %+v", d.Identity)
			}
		})
	}
}

func TestChallengeRealmAndEscaping(t *testing.T) {
	d := denyInvalidToken
	if got, want := d.ChallengeHeader(`api "v1"`), `Bearer realm="api \"v1\"", error="invalid_token", error_description="Invalid token."`; got != want {
		t.Fatalf("challenge = %q, want %q", got, want)
	}
	d = denyMissingCredentials
	if got, want := d.ChallengeHeader("meet"), `Bearer realm="meet"`; got != want {
		t.Fatalf("challenge = %q, want %q", got, want)
	}
}

// rawToken signs arbitrary header and payload JSON with the test secret;
// "pad" keeps base64 padding on every segment.
func rawToken(t testing.TB, header, payload string, opts ...string) string {
	t.Helper()
	enc := func(b []byte) string { return b64(b, len(opts) > 0) }
	in := enc([]byte(header)) + "." + enc([]byte(payload))
	sig, err := jwt.SigningMethodHS256.Sign(in, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + enc(sig)
}
