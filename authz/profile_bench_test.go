package authz

import (
	"context"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatehouse-authz/gatehouse/userstore"
)

var benchAddonSecret = []byte("a-test-add-on-secret-of-length-32!!")

// kindDir is mapDir with kinds: under 2026.08 the application is looked up
// on every request.
type kindDir map[kindKey]userstore.Status

type kindKey struct {
	kind userstore.Kind
	id   string
}

func (m kindDir) Lookup(_ context.Context, kind userstore.Kind, id string) (userstore.Status, error) {
	return m[kindKey{kind, id}], nil
}

// rulePolicy gives every request one rule and, as a MethodPolicy, allow.
type rulePolicy struct {
	rule  Rule
	allow string
}

func (p rulePolicy) Match(*Request) Rule   { return p.rule }
func (p rulePolicy) Allow(*Request) string { return p.allow }

func benchProfileAuthorizer(b *testing.B, p Profile, cacheSize int, policy Policy) *Authorizer {
	b.Helper()
	opts := Options{
		JWT:            testConfig(),
		Directory:      kindDir{{userstore.User, activeUser}: userstore.Active, {userstore.App, testClient}: userstore.Active},
		Policy:         policy,
		Profile:        p,
		TokenCacheSize: cacheSize,
		Now:            func() time.Time { return testNow },
	}
	if p == Profile202608 {
		opts.Addons = JWTConfig{Secret: benchAddonSecret, Algorithm: "HS256", Issuer: DefaultIssuer, Audience: DefaultAddonsAudience}
	}
	a, err := New(opts)
	if err != nil {
		b.Fatal(err)
	}
	return a
}

// BenchmarkDecideProfile measures the decision core under each profile on
// Meet's rooms list (scope rooms:list): a cached application token (the hot
// path), a first-seen one (full verification), a cached add-on token
// (2026.08: one failed HMAC check less than first-seen, none when cached),
// a bad signature (every kind's HMAC), garbage, and a PUT answered 405
// (2026.08) or unknown action (2025.10).
func BenchmarkDecideProfile(b *testing.B) {
	ctx := context.Background()
	scoped := rulePolicy{rule: Rule{Scope: "rooms:list"}}
	unrouted := rulePolicy{rule: Rule{UnknownAction: true}, allow: "GET, POST, HEAD, OPTIONS"}
	appReq := &Request{Method: "GET", Path: "/external-api/v1.0/rooms/", Authorization: "Bearer " + sign(b, meetClaims())}
	addonClaims := with(meetClaims(), "client_id", nil, "delegated", nil, "aud", DefaultAddonsAudience)
	addonReq := &Request{Method: "GET", Path: appReq.Path,
		Authorization: "Bearer " + signWith(b, jwt.SigningMethodHS256, benchAddonSecret, addonClaims)}
	badReq := &Request{Method: "GET", Path: appReq.Path, Authorization: appReq.Authorization[:len(appReq.Authorization)-4] + "AAAA"}
	garbage := &Request{Method: "GET", Path: appReq.Path, Authorization: "Bearer not-a-token"}
	putReq := &Request{Method: "PUT", Path: appReq.Path, Authorization: appReq.Authorization}

	for _, p := range []Profile{Profile202510, Profile202608} {
		b.Run(p.String(), func(b *testing.B) {
			run := func(name string, cacheSize int, policy Policy, req *Request, ok func(Decision) bool) {
				b.Run(name, func(b *testing.B) {
					a := benchProfileAuthorizer(b, p, cacheSize, policy)
					b.ReportAllocs()
					for b.Loop() {
						if d := a.Decide(ctx, req); !ok(d) {
							b.Fatal(d.Reason)
						}
					}
				})
			}
			allowed := func(d Decision) bool { return d.Allowed() }
			reason := func(r Reason) func(Decision) bool { return func(d Decision) bool { return d.Reason == r } }
			run("cached-token", 0, scoped, appReq, allowed)
			run("first-seen-token", -1, scoped, appReq, allowed)
			if p == Profile202608 {
				run("addon-cached-token", 0, scoped, addonReq, allowed)
				run("addon-first-seen-token", -1, scoped, addonReq, allowed)
			}
			run("bad-signature", 0, scoped, badReq, reason(ReasonInvalidToken))
			run("garbage", 0, scoped, garbage, reason(ReasonInvalidToken))
			want := ReasonUnknownAction
			if p == Profile202608 {
				want = ReasonMethodNotAllowed
			}
			run("unrouted-method", 0, unrouted, putReq, reason(want))
		})
	}
}
