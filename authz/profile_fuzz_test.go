package authz_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/authz/internal/profiletest"
	"github.com/gatehouse-authz/gatehouse/internal/testkit"
)

// The grammar of the profile fuzz target: each dimension of a token and its
// request takes one of a few values, chosen by one byte of the input. The
// first value of each is the valid Meet application token's, GET on the rooms
// list.
type dim struct {
	name   string
	values []any
}

// absent deletes a claim.
type absent struct{}

var grammar = []dim{
	{"key", []any{"app", "addon", "other"}},
	{"alg", []any{"HS256", "HS512"}},
	{"iss", []any{authz.DefaultIssuer, absent{}, "someone-else"}},
	{"aud", []any{absent{}, "addons", "meet"}},
	{"exp", []any{profiletest.Rel(3600), absent{}, profiletest.Rel(-60), "1900000000"}},
	{"iat", []any{profiletest.Rel(-60), absent{}, profiletest.Rel(600)}},
	{"nbf", []any{absent{}, profiletest.Rel(-60), profiletest.Rel(600)}},
	{"user_id", []any{profiletest.ActiveUser, absent{}, profiletest.InactiveUser, profiletest.UnknownUser, "", "alice", 5}},
	{"client_id", []any{profiletest.ActiveApp, absent{}, profiletest.DisabledApp, profiletest.UnknownApp, 5, ""}},
	{"delegated", []any{true, absent{}, false, "true", 1}},
	{"scope", []any{
		"rooms:list rooms:retrieve", absent{}, "ROOMS:LIST", "meet:rooms:list", "  ", []any{"rooms:list"},
		[]any{1, "rooms:list"}, "rooms:list rooms:list", map[string]any{"rooms:list": 1}, []any{"Rooms:List"},
		"rooms:create", "", []any{}, "MEET:ROOMS:LIST rooms:retrieve", []any{"rooms:list rooms:create"},
	}},
	{"method", []any{"GET", "PUT", "OPTIONS", "DELETE", "POST", "HEAD"}},
	{"path", []any{profiletest.RoomsPath, profiletest.RoomPath, profiletest.OtherPath}},
}

// case_ is one point of the grammar: an index per dimension.
type case_ []int

func caseOf(b []byte) case_ {
	c := make(case_, len(grammar))
	for i := range grammar {
		if i < len(b) {
			c[i] = int(b[i]) % len(grammar[i].values)
		}
	}
	return c
}

func (c case_) val(name string) any {
	for i, d := range grammar {
		if d.name == name {
			return d.values[c[i]]
		}
	}
	panic(name)
}

func (c case_) is(name string, vs ...any) bool {
	v := c.val(name)
	for _, w := range vs {
		if reflect.DeepEqual(v, w) {
			return true
		}
	}
	return false
}

func (c case_) String() string {
	s := ""
	for i, d := range grammar {
		s += fmt.Sprintf("%s=%#v ", d.name, d.values[c[i]])
	}
	return s
}

// request builds the token and request of c.
func (c case_) request(t testing.TB, now time.Time) *authz.Request {
	tok := profiletest.Token{Set: map[string]any{}, Alg: c.val("alg").(string)}
	switch c.val("key") {
	case "addon":
		tok.Key = profiletest.AddonSecret
	case "other":
		tok.Key = profiletest.OtherSecret
	}
	for _, name := range []string{"iss", "aud", "exp", "iat", "nbf", "user_id", "client_id", "delegated", "scope"} {
		if _, del := c.val(name).(absent); del {
			tok.Set[name] = nil
		} else {
			tok.Set[name] = c.val(name)
		}
	}
	h, err := tok.Authorization(now)
	if err != nil {
		t.Fatal(err)
	}
	return &authz.Request{Method: c.val("method").(string), Path: c.val("path").(string), Authorization: h}
}

// Explanations: the rows of the 2026.08 profile (docs/design.md#profiles),
// each a condition on the token and on the pair of answers it explains.
const (
	explainOrder     = "order of the application checks"
	explainAppAlways = "application check always on"
	explainKinds     = "add-on tokens"
	explainScopes    = "scope normalisation"
	explainMethod    = "405 for a method not routed"
)

var authReasons = []authz.Reason{
	authz.ReasonInvalidClaims, authz.ReasonInvalidTokenType, authz.ReasonApplicationNotFound,
	authz.ReasonApplicationDisabled, authz.ReasonUserNotFound, authz.ReasonUserDisabled,
}

var permissionReasons = []authz.Reason{authz.ReasonAllowed, authz.ReasonNoScope, authz.ReasonMissingScope}

// explain returns the row that explains why old (2025.10, application
// checks on or not) and cur (2026.08) differ for c, or "".
func explain(c case_, checkApps bool, old, cur authz.Decision) string {
	appToken := c.is("key", "app") && c.is("alg", "HS256")
	switch {
	case appToken && slices.Contains(authReasons, old.Reason) && slices.Contains(authReasons, cur.Reason) &&
		!(c.is("client_id", profiletest.ActiveApp) && c.is("delegated", true) && c.is("user_id", profiletest.ActiveUser)):
		return explainOrder
	case appToken && !checkApps && c.is("client_id", profiletest.DisabledApp, profiletest.UnknownApp) &&
		(cur.Reason == authz.ReasonApplicationNotFound || cur.Reason == authz.ReasonApplicationDisabled):
		return explainAppAlways
	case c.is("key", "addon") && c.is("alg", "HS256") && old.Reason == authz.ReasonInvalidToken:
		return explainKinds
	case c.is("scope", "ROOMS:LIST", "meet:rooms:list", "  ", []any{1, "rooms:list"}, "rooms:list rooms:list",
		[]any{"Rooms:List"}, "MEET:ROOMS:LIST rooms:retrieve") &&
		slices.Contains(permissionReasons, old.Reason) && slices.Contains(permissionReasons, cur.Reason) &&
		old.Identity.UserID == cur.Identity.UserID && old.Identity.ClientID == cur.Identity.ClientID:
		return explainScopes
	case !c.is("path", profiletest.OtherPath) && !c.is("method", "GET", "HEAD", "OPTIONS") &&
		!(c.is("path", profiletest.RoomsPath) && c.is("method", "POST")) &&
		old.Reason == authz.ReasonUnknownAction && cur.Reason == authz.ReasonMethodNotAllowed:
		return explainMethod
	}
	return ""
}

// visible is what a client and the backend see of a decision: all but the
// identity a deny keeps for logs.
func visible(d authz.Decision) authz.Decision {
	if !d.Allowed() {
		d.Identity = authz.Identity{}
	}
	return d
}

// profilePair holds one Authorizer per profile, application checks on and
// off for 2025.10, over the rows' directory and a fixed clock.
type profilePair struct {
	off, on, cur *authz.Authorizer
	now          time.Time
}

func newProfilePair(t testing.TB) *profilePair {
	clock := testkit.NewClock(rowNow)
	mk := func(p authz.Profile, s profiletest.Setup) *authz.Authorizer {
		a, err := authz.New(profiletest.Options(p, s, profiletest.Directory(), clock.Now))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	return &profilePair{
		off: mk(authz.Profile202510, profiletest.Setup{}),
		on:  mk(authz.Profile202510, profiletest.Setup{CheckApps: true}),
		cur: mk(authz.Profile202608, profiletest.Setup{Prefix: "meet"}),
		now: rowNow,
	}
}

// check decides c under each profile and fails unless every difference is
// explained by a row; it returns the explanations used.
func (pp *profilePair) check(t testing.TB, c case_) []string {
	req := c.request(t, pp.now)
	ctx := context.Background()
	cur := pp.cur.Decide(ctx, req)
	var used []string
	for _, o := range []struct {
		a         *authz.Authorizer
		checkApps bool
	}{{pp.off, false}, {pp.on, true}} {
		old := o.a.Decide(ctx, req)
		if visible(old) == visible(cur) {
			continue
		}
		why := explain(c, o.checkApps, old, cur)
		if why == "" {
			t.Fatalf("%s (application checks %v): 2025.10 answers %d %s %q %+v, 2026.08 %d %s %q %+v, and no row of the profile explains it",
				c, o.checkApps, old.Status, old.Reason, old.Message, old.Identity, cur.Status, cur.Reason, cur.Message, cur.Identity)
		}
		used = append(used, why)
	}
	return used
}

// FuzzProfileDifferences: for tokens and requests from a small grammar of
// claims, what 2025.10 and 2026.08 answer differently is explained by one
// of the rows of the 2026.08 profile.
func FuzzProfileDifferences(f *testing.F) {
	for _, c := range neighbourhood() {
		b := make([]byte, len(c))
		for i, v := range c {
			b[i] = byte(v)
		}
		f.Add(b)
	}
	pp := newProfilePair(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		pp.check(t, caseOf(b))
	})
}

// neighbourhood is the valid token's case, every case one dimension away
// from it, and every case two dimensions away.
func neighbourhood() []case_ {
	base := make(case_, len(grammar))
	out := []case_{base}
	for i := range grammar {
		for v := 1; v < len(grammar[i].values); v++ {
			c := slices.Clone(base)
			c[i] = v
			out = append(out, c)
			for j := i + 1; j < len(grammar); j++ {
				for w := 1; w < len(grammar[j].values); w++ {
					c2 := slices.Clone(c)
					c2[j] = w
					out = append(out, c2)
				}
			}
		}
	}
	return out
}

// TestProfileDifferencesExplained runs the fuzz check over the whole
// neighbourhood of the valid token, and checks that each row's explanation
// is needed by some case: an explanation nothing uses would hide nothing,
// and one missing would fail above.
func TestProfileDifferencesExplained(t *testing.T) {
	pp := newProfilePair(t)
	used := map[string]int{}
	cases := neighbourhood()
	for _, c := range cases {
		for _, why := range pp.check(t, c) {
			used[why]++
		}
	}
	for _, why := range []string{explainOrder, explainAppAlways, explainKinds, explainScopes, explainMethod} {
		if used[why] == 0 {
			t.Errorf("no case differs by %s", why)
		}
	}
	t.Logf("%d cases; differences by row: %v", len(cases), used)
}
