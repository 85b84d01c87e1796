package authz_test

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/authz/oidc"
	"github.com/gatehouse-authz/gatehouse/internal/testkit/oidctest"
	"github.com/gatehouse-authz/gatehouse/userstore"
)

// BenchmarkDecideIntrospected decides a request carrying an OIDC access
// token through the real Introspector: cached-verdict is the steady state
// (the verdict in process, the user's status in a warm directory),
// cold-verdict pays the provider's round trip over loopback on every
// request (the verdict cache off).
func BenchmarkDecideIntrospected(b *testing.B) {
	const user = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
	p := oidctest.New(b)
	const opaque = "opaque-access-token-for-the-benchmark-0123456789"
	// Keycloak's access tokens are JWTs (RS256): the JWT kinds parse them
	// before passing them on.
	const jwtShaped = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImsxIn0.eyJzdWIiOiJzdWItYW5uIiwic2NvcGUiOiJsYXN1aXRlX21lZXQifQ.c2lnbmF0dXJl"
	dir := userstore.NewMemory([]userstore.Record{{ID: user, Active: true, Sub: "sub-ann"}}, nil)
	for _, bc := range []struct {
		name, tok string
		ttl       time.Duration
	}{{"cached-verdict", opaque, time.Minute}, {"cached-verdict-jwt-shaped", jwtShaped, time.Minute}, {"cold-verdict", opaque, -1}} {
		p.SetToken(bc.tok, p.Active("sub-ann", "lasuite_meet rooms:list"))
		req := &authz.Request{Method: "GET", Path: "/rooms", Authorization: "Bearer " + bc.tok}
		b.Run(bc.name, func(b *testing.B) {
			in, err := oidc.New(oidc.Config{
				IntrospectionURL: p.IntrospectionURL(), Issuer: p.Issuer,
				ClientID: oidctest.ClientID, ClientSecret: oidctest.ClientSecret,
				CacheTTL: bc.ttl, NegativeCacheTTL: -1,
			})
			if err != nil {
				b.Fatal(err)
			}
			a, err := authz.New(authz.Options{
				JWT:          authz.JWTConfig{Secret: []byte("bench-secret-of-reasonable-length!"), Algorithm: "HS256"},
				Directory:    dir,
				Profile:      authz.Profile202608,
				Introspector: in,
				Subjects:     dir,
			})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if d := a.Decide(ctx, req); !d.Allowed() {
					b.Fatal(d.Message)
				}
			}
		})
	}
}
