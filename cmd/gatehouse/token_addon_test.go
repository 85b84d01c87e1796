package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/userstore"
)

// TestTokenAddon: "gatehouse token --addon" mints an add-on token with the
// GATEHOUSE_ADDONS_JWT_* settings, which a 2026.08 decision core accepts as
// an add-on token (no client id upstream) and a 2025.10 one refuses.
func TestTokenAddon(t *testing.T) {
	const appSecret, addonSecret = "token-test-secret-0123456789abcdef", "token-test-add-on-secret-0123456789"
	env := baseEnv("GATEHOUSE_JWT_SECRET="+appSecret, "GATEHOUSE_ADDONS_JWT_SECRET="+addonSecret)
	r := gatehouse(t, env, "token", "--addon", "--user-id", "u-1", "--scope", "rooms:list", "--ttl", "10m")
	if r.code != exitOK {
		t.Fatalf("token --addon: code %d %s", r.code, r.stderr)
	}
	var resp authz.TokenResponse
	if err := json.Unmarshal([]byte(r.stdout), &resp); err != nil {
		t.Fatal(err)
	}
	decide := func(p authz.Profile) authz.Decision {
		opts := authz.Options{
			JWT:          authz.JWTConfig{Secret: []byte(appSecret), Algorithm: "HS256", Issuer: authz.DefaultIssuer},
			Directory:    userstore.NewMemory([]userstore.Record{{ID: "u-1", Active: true}}, nil),
			UserIDFormat: authz.IDFormatOpaque,
			Profile:      p,
		}
		if p == authz.Profile202608 {
			opts.Addons = authz.JWTConfig{Secret: []byte(addonSecret), Algorithm: "HS256",
				Issuer: authz.DefaultAddonsIssuer, Audience: authz.DefaultAddonsAudience}
		}
		a, err := authz.New(opts)
		if err != nil {
			t.Fatal(err)
		}
		return a.Decide(context.Background(), &authz.Request{Method: "GET", Path: "/", Authorization: "Bearer " + resp.AccessToken})
	}
	if d := decide(authz.Profile202608); !d.Allowed() || d.Identity != (authz.Identity{UserID: "u-1", Scope: "rooms:list"}) {
		t.Errorf("2026.08 refused the add-on token: %+v", d)
	}
	if d := decide(authz.Profile202510); d.Allowed() {
		t.Error("2025.10 accepted an add-on token")
	}

	for _, c := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"client id", env, []string{"--addon", "--user-id", "u", "--client-id", "c"}, "an add-on token has no client id"},
		{"no add-on secret", baseEnv("GATEHOUSE_JWT_SECRET=" + appSecret), []string{"--addon", "--user-id", "u"}, "--addon needs GATEHOUSE_ADDONS_JWT_SECRET_FILE"},
		{"bad add-on algorithm", env, []string{"--addon", "--user-id", "u", "--addons-jwt-algorithm", "none"}, "unsupported JWT algorithm"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := gatehouse(t, c.env, append([]string{"token"}, c.args...)...)
			assertOneLineError(t, r, c.want)
			if strings.Contains(r.stderr, addonSecret) {
				t.Error("error shows the secret")
			}
		})
	}
}
