package authz_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/authz/internal/profiletest"
	"github.com/gatehouse-authz/gatehouse/authz/routes"
	"github.com/gatehouse-authz/gatehouse/internal/testkit"
)

var profiles = [...]authz.Profile{authz.Profile202510, authz.Profile202608}

// rowNow has a fractional second, as PyJWT's clock has.
var rowNow = time.Unix(1_800_000_000, 250_000_000)

// TestProfileRows runs every row of both profiles through the decision
// core, twice: the second answer comes through the verified-token cache.
func TestProfileRows(t *testing.T) {
	for _, p := range profiles {
		for _, row := range profiletest.Rows() {
			t.Run(p.String()+"/"+row.Topic+"/"+row.Name, func(t *testing.T) {
				t.Parallel()
				clock := testkit.NewClock(rowNow)
				a, err := authz.New(profiletest.Options(p, row.Setup, profiletest.Directory(), clock.Now))
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				h, err := row.Token.Authorization(rowNow)
				if err != nil {
					t.Fatal(err)
				}
				req := &authz.Request{Method: row.MethodOf(), Path: row.PathOf(), Authorization: h}
				for _, pass := range []string{"first", "cached"} {
					d := a.Decide(context.Background(), req)
					checkRow(t, pass, d, row.Want[p])
				}
			})
		}
	}
}

// checkRow compares a decision with a row's answer.
func checkRow(t *testing.T, pass string, d authz.Decision, w profiletest.Want) {
	t.Helper()
	if d.Status != w.Status || d.Reason != w.Reason || d.Message != w.Message || d.Allow != w.Allow {
		t.Fatalf("%s: decision {%d %s %q allow=%q}, want {%d %s %q allow=%q}",
			pass, d.Status, d.Reason, d.Message, d.Allow, w.Status, w.Reason, w.Message, w.Allow)
	}
	if w.Status == http.StatusOK {
		if !d.Allowed() {
			t.Fatalf("%s: status 200 without an allow", pass)
		}
		want := authz.Identity{UserID: profiletest.ActiveUser, ClientID: w.ClientID, Scope: w.Scope}
		if d.Identity != want {
			t.Fatalf("%s: identity %+v, want %+v", pass, d.Identity, want)
		}
		return
	}
	if d.Allowed() {
		t.Fatalf("%s: allowed", pass)
	}
	var body struct{ Detail string }
	if err := json.Unmarshal(d.Body(), &body); err != nil || body.Detail != w.Message {
		t.Fatalf("%s: body %s, want detail %q", pass, d.Body(), w.Message)
	}
	ch := d.ChallengeHeader("")
	switch w.Status {
	case http.StatusUnauthorized:
		if !strings.HasPrefix(ch, "Bearer") {
			t.Fatalf("%s: 401 with challenge %q", pass, ch)
		}
	case http.StatusMethodNotAllowed:
		if ch != "" {
			t.Fatalf("%s: 405 with challenge %q", pass, ch)
		}
	}
}

// TestProfileRowsCoverTopics: each part of the 2026.08 profile has rows
// where the profiles differ, and rows where they must agree.
func TestProfileRowsCoverTopics(t *testing.T) {
	differ, agree := map[string]int{}, map[string]int{}
	names := map[string]bool{}
	for _, r := range profiletest.Rows() {
		if names[r.Topic+r.Name] {
			t.Errorf("row %q twice", r.Name)
		}
		names[r.Topic+r.Name] = true
		if r.Want[0] != r.Want[1] {
			differ[r.Topic]++
		} else {
			agree[r.Topic]++
		}
	}
	for _, topic := range []string{profiletest.TopicOrder, profiletest.TopicKinds, profiletest.TopicAddon,
		profiletest.TopicScopes, profiletest.TopicMethod} {
		if differ[topic] == 0 {
			t.Errorf("no row shows what 2026.08 changes in %s", topic)
		}
		if agree[topic] == 0 && topic != profiletest.TopicAddon {
			t.Errorf("no row shows what 2026.08 keeps in %s", topic)
		}
	}
}

func TestParseProfile(t *testing.T) {
	for in, want := range map[string]authz.Profile{"": authz.Profile202510, "2025.10": authz.Profile202510, "2026.08": authz.Profile202608} {
		if got, err := authz.ParseProfile(in); err != nil || got != want {
			t.Errorf("ParseProfile(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"2026.8", "latest", "2025.10 ", "2026-08"} {
		if _, err := authz.ParseProfile(in); err == nil {
			t.Errorf("ParseProfile(%q) accepted", in)
		}
	}
	if authz.Profile202608.String() != "2026.08" || authz.Profile202510.String() != "2025.10" {
		t.Error("profile names")
	}
}

// TestProfileOptions: settings of a later Meet are refused under 2025.10
// rather than ignored, and errors never carry a secret.
func TestProfileOptions(t *testing.T) {
	base := func(p authz.Profile) authz.Options {
		return profiletest.Options(p, profiletest.Setup{NoAddons: true}, profiletest.Directory(), nil)
	}
	addon := authz.JWTConfig{Secret: profiletest.AddonSecret, Audience: authz.DefaultAddonsAudience}
	for _, tc := range []struct {
		name   string
		mutate func(*authz.Options)
		ok     bool
	}{
		{"2025.10 alone", func(o *authz.Options) {}, true},
		{"2025.10 with add-on tokens", func(o *authz.Options) { o.Addons = addon }, false},
		{"2025.10 with a scopes prefix", func(o *authz.Options) { o.ScopesPrefix = "meet" }, false},
		{"2026.08 with add-on tokens", func(o *authz.Options) { o.Profile = authz.Profile202608; o.Addons = addon }, true},
		{"2026.08 with a scopes prefix", func(o *authz.Options) { o.Profile = authz.Profile202608; o.ScopesPrefix = "meet" }, true},
		{"2026.08, add-on algorithm refused", func(o *authz.Options) {
			o.Profile = authz.Profile202608
			o.Addons = addon
			o.Addons.Algorithm = "RS256"
		}, false},
		{"2026.08, add-on leeway negative", func(o *authz.Options) {
			o.Profile = authz.Profile202608
			o.Addons = addon
			o.Addons.Leeway = -time.Second
		}, false},
		{"unknown profile", func(o *authz.Options) { o.Profile = 7 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base(authz.Profile202510)
			tc.mutate(&o)
			_, err := authz.New(o)
			if (err == nil) != tc.ok {
				t.Fatalf("New: %v, want ok=%v", err, tc.ok)
			}
			if err != nil && (strings.Contains(err.Error(), string(profiletest.AddonSecret)) ||
				strings.Contains(err.Error(), string(profiletest.AppSecret))) {
				t.Fatalf("error carries a secret: %v", err)
			}
		})
	}
}

// newRowAuthorizer is an Authorizer of profile p and setup s on clock.
func newRowAuthorizer(t *testing.T, p authz.Profile, s profiletest.Setup, clock *testkit.Clock) *authz.Authorizer {
	t.Helper()
	a, err := authz.New(profiletest.Options(p, s, profiletest.Directory(), clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func decideAt(t *testing.T, a *authz.Authorizer, tok profiletest.Token, at time.Time) authz.Decision {
	t.Helper()
	h, err := tok.Authorization(at)
	if err != nil {
		t.Fatal(err)
	}
	return a.Decide(context.Background(), &authz.Request{Method: "GET", Path: profiletest.RoomsPath, Authorization: h})
}

// TestKindsCacheClockBound: a token an earlier kind passed on because of
// the clock (nbf in the future) is not cached: once the clock has moved, the
// earlier kind decodes it and its answer (a wrong aud: stop) is the answer.
func TestKindsCacheClockBound(t *testing.T) {
	clock := testkit.NewClock(rowNow)
	a := newRowAuthorizer(t, authz.Profile202608, profiletest.Setup{SharedKey: true, AddonLeeway: 2 * time.Hour}, clock)
	h, err := profiletest.Token{Addon: true, Key: profiletest.AppSecret, Set: map[string]any{"nbf": profiletest.Rel(300)}}.Authorization(rowNow)
	if err != nil {
		t.Fatal(err)
	}
	req := &authz.Request{Method: "GET", Path: profiletest.RoomsPath, Authorization: h}
	if d := a.Decide(context.Background(), req); !d.Allowed() {
		t.Fatalf("before nbf: %s, want the add-on kind's allow", d.Reason)
	}
	clock.Advance(400 * time.Second) // past nbf, well within the cache's lifetime for a token
	if d := a.Decide(context.Background(), req); d.Reason != authz.ReasonInvalidToken {
		t.Fatalf("after nbf: %s, want invalid_token (the application kind decodes it and stops on aud)", d.Reason)
	}
}

// TestKindsCacheExpiry: a cached add-on token expires with its own kind's
// leeway, and the answer is "Token expired.".
func TestKindsCacheExpiry(t *testing.T) {
	clock := testkit.NewClock(rowNow)
	a := newRowAuthorizer(t, authz.Profile202608, profiletest.Setup{AddonLeeway: 30 * time.Second}, clock)
	tok := profiletest.Token{Addon: true, Set: map[string]any{"exp": profiletest.Rel(60)}}
	if d := decideAt(t, a, tok, rowNow); !d.Allowed() {
		t.Fatalf("fresh: %s", d.Reason)
	}
	clock.Advance(80 * time.Second) // past exp, within the add-on leeway
	if d := decideAt(t, a, tok, rowNow); !d.Allowed() {
		t.Fatalf("within leeway: %s", d.Reason)
	}
	clock.Advance(20 * time.Second)
	if d := decideAt(t, a, tok, rowNow); d.Reason != authz.ReasonTokenExpired {
		t.Fatalf("past leeway: %s, want token_expired", d.Reason)
	}
}

// TestKindsCacheClockBack: when the clock goes back before a cached token's
// iat, the token is decided afresh: the application kind passes it on and
// no other kind has its key.
func TestKindsCacheClockBack(t *testing.T) {
	clock := testkit.NewClock(rowNow)
	a := newRowAuthorizer(t, authz.Profile202608, profiletest.Setup{}, clock)
	tok := profiletest.Token{Set: map[string]any{"iat": profiletest.Rel(0)}}
	if d := decideAt(t, a, tok, rowNow); !d.Allowed() {
		t.Fatalf("fresh: %s", d.Reason)
	}
	clock.Set(rowNow.Add(-100 * time.Second))
	if d := decideAt(t, a, tok, rowNow); d.Reason != authz.ReasonInvalidToken {
		t.Fatalf("clock back: %s, want invalid_token", d.Reason)
	}
}

// TestProfilesSideBySide: the profile is a value of each Authorizer; two of
// them, one per profile, answer the same requests concurrently each its own
// way.
func TestProfilesSideBySide(t *testing.T) {
	clock := testkit.NewClock(rowNow)
	old := newRowAuthorizer(t, authz.Profile202510, profiletest.Setup{}, clock)
	cur := newRowAuthorizer(t, authz.Profile202608, profiletest.Setup{}, clock)
	h, err := profiletest.Token{}.Authorization(rowNow)
	if err != nil {
		t.Fatal(err)
	}
	req := &authz.Request{Method: "PUT", Path: profiletest.RoomsPath, Authorization: h}
	done := make(chan error, 2)
	for _, c := range []struct {
		a    *authz.Authorizer
		want authz.Reason
	}{{old, authz.ReasonUnknownAction}, {cur, authz.ReasonMethodNotAllowed}} {
		go func() {
			for range 200 {
				if d := c.a.Decide(context.Background(), req); d.Reason != c.want {
					done <- &reasonError{d.Reason, c.want}
					return
				}
			}
			done <- nil
		}()
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

type reasonError struct{ got, want authz.Reason }

func (e *reasonError) Error() string { return string(e.got) + ", want " + string(e.want) }

// TestMethodPolicyOnlyUnder2026: a MethodPolicy's Allow is asked only under
// 2026.08, and only for an unknown action; a Policy without it keeps the
// unknown action.
func TestMethodPolicyOnlyUnder2026(t *testing.T) {
	clock := testkit.NewClock(rowNow)
	o := profiletest.Options(authz.Profile202608, profiletest.Setup{}, profiletest.Directory(), clock.Now)
	o.Policy = plainPolicy{routes.NewSet(routes.Meet())}
	a, err := authz.New(o)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := profiletest.Token{}.Authorization(rowNow)
	d := a.Decide(context.Background(), &authz.Request{Method: "PUT", Path: profiletest.RoomsPath, Authorization: h})
	if d.Reason != authz.ReasonUnknownAction {
		t.Fatalf("without MethodPolicy: %s, want unknown_action", d.Reason)
	}
}

// plainPolicy hides the Set's Allow method.
type plainPolicy struct{ p authz.Policy }

func (p plainPolicy) Match(r *authz.Request) authz.Rule { return p.p.Match(r) }
