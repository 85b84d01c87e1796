package authz

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatehouse-authz/gatehouse/userstore"
)

// fakeIntrospector answers from a table of verdicts by token, and records
// the tokens it was asked about.
type fakeIntrospector struct {
	mu       sync.Mutex
	verdicts map[string]Introspection
	err      error
	asked    []string
}

func (f *fakeIntrospector) Introspect(_ context.Context, token string) (Introspection, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, token)
	if f.err != nil {
		return Introspection{}, f.err
	}
	return f.verdicts[token], nil // unknown: the zero value, not active
}

// fakeSubjects maps subjects to user ids.
type fakeSubjects struct {
	ids map[string]string
	err error
}

func (f *fakeSubjects) UserBySub(_ context.Context, sub string) (string, bool, error) {
	if f.err != nil {
		return "", false, f.err
	}
	id, ok := f.ids[sub]
	return id, ok, nil
}

type rsFixture struct {
	*fixture
	in   *fakeIntrospector
	subs *fakeSubjects
}

func newRSFixture(t *testing.T, mutate func(*Options)) *rsFixture {
	t.Helper()
	in := &fakeIntrospector{verdicts: map[string]Introspection{
		"opaque-ann":    {Active: true, Sub: "sub-ann", Audience: "docs", Scope: "openid lasuite_meet rooms:list"},
		"opaque-bob":    {Active: true, Sub: "sub-bob", Audience: "docs", Scope: "lasuite_meet rooms:list"},
		"opaque-nobody": {Active: true, Sub: "sub-nobody", Audience: "docs", Scope: "lasuite_meet"},
		"opaque-bad-id": {Active: true, Sub: "sub-bad-id", Audience: "docs", Scope: "lasuite_meet"},
		"opaque-401":    {Description: "The access token has expired"},
		"opaque-upper":  {Active: true, Sub: "sub-ann", Audience: "docs", Scope: "LASUITE_MEET Rooms:List"},
	}}
	subs := &fakeSubjects{ids: map[string]string{
		"sub-ann":    activeUser,
		"sub-bob":    inactiveUser,
		"sub-bad-id": "not-a-uuid",
	}}
	f := newFixture(t, func(o *Options) {
		o.Profile = Profile202608
		o.Introspector = in
		o.Subjects = subs
		o.Policy = scopePolicy{"/rooms": "rooms:list", "/rooms/x": "rooms:create"}
		if mutate != nil {
			mutate(o)
		}
	})
	return &rsFixture{fixture: f, in: in, subs: subs}
}

// scopePolicy requires a scope by exact path.
type scopePolicy map[string]string

func (p scopePolicy) Match(req *Request) Rule { return Rule{Scope: p[req.Path]} }

func (f *rsFixture) at(t *testing.T, path, token string) Decision {
	t.Helper()
	return f.a.Decide(context.Background(), &Request{Method: "GET", Path: path, Authorization: "Bearer " + token})
}

func TestIntrospectedTokens(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name, path, token string
		status            int
		reason            Reason
		message           string
		id                Identity
	}{
		{name: "allowed", path: "/rooms", token: "opaque-ann", status: 200, reason: ReasonAllowed,
			id: Identity{UserID: activeUser, ClientID: "docs", Scope: "openid lasuite_meet rooms:list"}},
		{name: "base64 of the token", path: "/rooms", token: b64("opaque-ann"), status: 200, reason: ReasonAllowed,
			id: Identity{UserID: activeUser, ClientID: "docs", Scope: "openid lasuite_meet rooms:list"}},
		{name: "scopes normalised as a token's", path: "/rooms", token: "opaque-upper", status: 200, reason: ReasonAllowed,
			id: Identity{UserID: activeUser, ClientID: "docs", Scope: "lasuite_meet rooms:list"}},
		{name: "route scope missing", path: "/rooms/x", token: "opaque-ann", status: 403, reason: ReasonMissingScope,
			message: "Insufficient permissions. Required scope: rooms:create"},
		{name: "inactive user", path: "/rooms", token: "opaque-bob", status: 401, reason: ReasonUserDisabled,
			message: "User account is disabled."},
		{name: "no user has the subject", path: "/rooms", token: "opaque-nobody", status: 401, reason: ReasonUserNotFound,
			message: "Login failed: No user found for the given access token."},
		{name: "index names no valid id", path: "/rooms", token: "opaque-bad-id", status: 401, reason: ReasonUserNotFound,
			message: "Login failed: No user found for the given access token."},
		{name: "refused by the provider's checks", path: "/rooms", token: "opaque-unknown", status: 401, reason: ReasonLoginFailed,
			message: "Login failed"},
		{name: "provider 401 description", path: "/rooms", token: "opaque-401", status: 401, reason: ReasonLoginFailed,
			message: "The access token has expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newRSFixture(t, nil)
			d := f.at(t, tt.path, tt.token)
			if d.Status != tt.status || d.Reason != tt.reason {
				t.Fatalf("decision %d %s %q, want %d %s", d.Status, d.Reason, d.Message, tt.status, tt.reason)
			}
			if tt.status == http.StatusOK {
				if !d.Allowed() || d.Identity != tt.id {
					t.Fatalf("allowed=%v identity %+v, want %+v", d.Allowed(), d.Identity, tt.id)
				}
				return
			}
			if d.Allowed() || d.Message != tt.message {
				t.Fatalf("allowed=%v message %q, want %q", d.Allowed(), d.Message, tt.message)
			}
			if d.Status == http.StatusUnauthorized && !strings.Contains(d.ChallengeHeader(""), `error="invalid_token"`) {
				t.Fatalf("challenge %q", d.ChallengeHeader(""))
			}
		})
	}
}

// JWT kinds come first: a token one of them decodes never reaches the
// provider, and one they refuse for a reason of their own (expired) stops
// there too.
func TestIntrospectionComesLast(t *testing.T) {
	f := newRSFixture(t, nil)
	if d := f.at(t, "/rooms", sign(t, meetClaims())); !d.Allowed() {
		t.Fatalf("application token: %d %s", d.Status, d.Reason)
	}
	expired := sign(t, with(meetClaims(), "exp", testNow.Unix()-100))
	if d := f.at(t, "/rooms", expired); d.Reason != ReasonTokenExpired {
		t.Fatalf("expired application token: %s, want token_expired", d.Reason)
	}
	wrongIss := sign(t, with(meetClaims(), "iss", "someone-else"))
	if d := f.at(t, "/rooms", wrongIss); d.Reason != ReasonInvalidToken {
		t.Fatalf("application token of another issuer: %s, want invalid_token", d.Reason)
	}
	if len(f.in.asked) != 0 {
		t.Fatalf("the provider was asked about %d JWTs a JWT kind decoded", len(f.in.asked))
	}
	// Signed with another key: no kind decodes it, so the provider is asked.
	other := signWith(t, jwt.SigningMethodHS256, []byte("another-secret-of-reasonable-length"), meetClaims())
	if d := f.at(t, "/rooms", other); d.Reason != ReasonLoginFailed {
		t.Fatalf("foreign JWT: %s, want login_failed", d.Reason)
	}
	if len(f.in.asked) != 1 || f.in.asked[0] != other {
		t.Fatalf("provider asked %d times", len(f.in.asked))
	}
}

// Fail closed: no answer from the provider or the directory is a 503, and
// an answer that is not Active never allows, whatever else it carries.
func TestIntrospectionFailsClosed(t *testing.T) {
	f := newRSFixture(t, nil)
	f.in.err = errors.New("provider down")
	d := f.at(t, "/rooms", "opaque-ann")
	if d.Result != Unavailable || d.Status != 503 || d.Reason != ReasonProviderUnavailable || d.RetryAfter() != "1" {
		t.Fatalf("provider down: %+v", d)
	}
	f.in.err = nil
	f.subs.err = userstore.ErrUnavailable
	if d := f.at(t, "/rooms", "opaque-ann"); d.Result != Unavailable || d.Reason != ReasonDirectoryError {
		t.Fatalf("subjects down: %+v", d)
	}
	f.subs.err = nil
	f.dir.err = userstore.ErrUnavailable
	if d := f.at(t, "/rooms", "opaque-ann"); d.Result != Unavailable || d.Reason != ReasonDirectoryError {
		t.Fatalf("directory down: %+v", d)
	}
	f.dir.err = nil
	// Not active, yet carrying everything an active answer would.
	f.in.verdicts["opaque-half"] = Introspection{Sub: "sub-ann", Audience: "docs", Scope: "lasuite_meet rooms:list"}
	if d := f.at(t, "/rooms", "opaque-half"); d.Allowed() || d.Reason != ReasonLoginFailed {
		t.Fatalf("inactive verdict: %+v", d)
	}
	// A description that cannot be a header value is not relayed.
	f.in.verdicts["opaque-crlf"] = Introspection{Description: "bad\r\nx-injected: 1"}
	if d := f.at(t, "/rooms", "opaque-crlf"); d.Message != "Login failed" {
		t.Fatalf("unsafe description relayed: %q", d.Message)
	}
	// An identity that cannot be sent upstream is refused.
	f.in.verdicts["opaque-aud"] = Introspection{Active: true, Sub: "sub-ann", Audience: "a\nb", Scope: "lasuite_meet rooms:list"}
	if d := f.at(t, "/rooms", "opaque-aud"); d.Allowed() || d.Reason != ReasonLoginFailed {
		t.Fatalf("unsafe audience: %+v", d)
	}
}

func TestIntrospectionOptions(t *testing.T) {
	in := &fakeIntrospector{}
	if _, err := New(Options{JWT: testConfig(), Directory: newFakeDir(), Introspector: in, Subjects: &fakeSubjects{}}); err == nil {
		t.Fatal("introspection accepted under 2025.10")
	}
	if _, err := New(Options{JWT: testConfig(), Directory: newFakeDir(), Profile: Profile202608, Introspector: in}); err == nil {
		t.Fatal("introspection accepted without Subjects")
	}
	// Without an Introspector, an undecodable token stays "Invalid token.".
	f := newFixture(t, func(o *Options) { o.Profile = Profile202608 })
	if d := f.decide(t, "Bearer opaque-ann"); d.Reason != ReasonInvalidToken {
		t.Fatalf("no resource server: %s", d.Reason)
	}
}

// resourceServerToken follows Python's base64.b64decode(validate=True)
// and UTF-8 decoding: every expectation is what CPython 3.11's
// base64.b64decode(s, validate=True).decode("utf-8") answers (the token
// itself where it raises). TestResourceServerTokenPython checks every
// short token.
func TestResourceServerToken(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"b3BhcXVl", "opaque"},               // 8 chars, no padding
		{"b3BhcXVlLQ==", "opaque-"},          // 2 mod 4 + "=="
		{"b3BhcXVlLTE=", "opaque-1"},         // 3 mod 4 + "="
		{"b3BhcXVlLTE==", "b3BhcXVlLTE=="},   // 3 mod 4 + "==": excess data after padding
		{"b3BhcXVl==", "opaque"},             // 0 mod 4: any "=" after is ignored
		{"b3Bh====", "opa"},                  //
		{"b3BhcXVlLQ=", "b3BhcXVlLQ="},       // 2 mod 4 + one "=": incorrect padding
		{"b3BhcXVlLQ===", "b3BhcXVlLQ==="},   // 2 mod 4 + three
		{"b3BhcXVlLQ", "b3BhcXVlLQ"},         // 2 mod 4 without padding
		{"b3BhcXVlLTE", "b3BhcXVlLTE"},       // 3 mod 4 without padding
		{"b3BhcXVlL", "b3BhcXVlL"},           // 1 mod 4
		{"Q==", "Q=="},                       // 1 mod 4 padded
		{"b3-hcXVl", "b3-hcXVl"},             // URL alphabet
		{"b3Bh=cXVl", "b3Bh=cXVl"},           // "=" inside
		{"QQ=Q", "QQ=Q"},                     // discontinuous padding
		{"/w==", "/w=="},                     // 0xff: not UTF-8
		{"7aCA", "7aCA"},                     // an encoded surrogate: not UTF-8
		{"b3BhcXVm", "opaquf"},               // ends in a full quantum
		{"YQ==", "a"},                        //
		{"YR==", "a"},                        // non-zero leftover bits: ignored
		{"eyJhbGciOi.x.y", "eyJhbGciOi.x.y"}, // a JWT: "." is not base64
		{"==", "=="},                         // leading padding
		{"=", "="},
	} {
		if got := resourceServerToken(tt.in); got != tt.want {
			t.Errorf("resourceServerToken(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestResourceServerTokenPython compares resourceServerToken with CPython
// on every token of 1 to 6 characters over "Qw=." (testdata/b64_python.txt:
// Q and w leave bits over and make bytes that are not always UTF-8).
// The file was written by this loop, run with CPython 3.11:
//
//	for n in range(1, 7):
//	    for t in itertools.product("Qw=.", repeat=n):
//	        s = "".join(t); r = s
//	        try: r = base64.b64decode(s, validate=True).decode("utf-8")
//	        except (binascii.Error, UnicodeDecodeError): pass
//	        print(s, r.encode().hex())
func TestResourceServerTokenPython(t *testing.T) {
	data, err := os.ReadFile("testdata/b64_python.txt")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		tok, hexText, ok := strings.Cut(line, " ")
		want, err := hex.DecodeString(hexText)
		if !ok || err != nil {
			t.Fatalf("bad line %q", line)
		}
		if got := resourceServerToken(tok); got != string(want) {
			t.Errorf("resourceServerToken(%q) = %q, CPython %q", tok, got, want)
		}
		n++
	}
	if n != 5460 {
		t.Fatalf("%d cases, want 5460", n)
	}
}

// A token every JWT kind passes on is remembered as such only while that
// cannot change: new keys drop the memory (the token may verify now), and a
// token passed on for the clock (nbf in the future) is not remembered.
func TestPassedTokensCache(t *testing.T) {
	other := []byte("another-secret-of-reasonable-length")
	f := newRSFixture(t, nil)
	tok := signWith(t, jwt.SigningMethodHS256, other, meetClaims())
	for range 2 {
		if d := f.at(t, "/rooms", tok); d.Reason != ReasonLoginFailed {
			t.Fatalf("foreign JWT: %s, want login_failed", d.Reason)
		}
	}
	if err := f.a.SetKeys([]Key{{ID: "old", Secret: testSecret}, {ID: "new", Secret: other}}, nil); err != nil {
		t.Fatal(err)
	}
	if d := f.at(t, "/rooms", tok); !d.Allowed() {
		t.Fatalf("after its key was added: %s %q", d.Reason, d.Message)
	}

	early := sign(t, with(meetClaims(), "nbf", testNow.Unix()+100))
	if d := f.at(t, "/rooms", early); d.Reason != ReasonLoginFailed {
		t.Fatalf("not yet valid: %s, want login_failed (passed to the provider)", d.Reason)
	}
	f.clock.Advance(200 * time.Second)
	if d := f.at(t, "/rooms", early); !d.Allowed() {
		t.Fatalf("once valid: %s %q", d.Reason, d.Message)
	}
	asked := len(f.in.asked)
	if asked != 3 {
		t.Fatalf("the provider was asked %d times, want 3 (twice for the foreign JWT, once for the early one)", asked)
	}
}
