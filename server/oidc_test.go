package server

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/authz/oidc"
	"github.com/gatehouse-authz/gatehouse/internal/testkit"
	"github.com/gatehouse-authz/gatehouse/internal/testkit/oidctest"
	"github.com/gatehouse-authz/gatehouse/internal/testkit/redistest"
)

// oidcConfig is a Redis-backed 2026.08 server accepting the provider's
// access tokens.
func oidcConfig(t *testing.T, rs *redistest.Server, p *oidctest.Provider) testConfig {
	t.Helper()
	cfg := redisConfig(t, rs.URL())
	cfg.MeetProfile = authz.Profile202608
	cfg.Routes = "meet"
	cfg.OIDC = oidc.Config{
		IntrospectionURL: p.IntrospectionURL(),
		Issuer:           p.Issuer,
		ClientID:         oidctest.ClientID,
		ClientSecret:     oidctest.ClientSecret,
		RequiredScopes:   []string{"lasuite_meet"},
		Timeout:          2 * time.Second,
		CacheTTL:         time.Minute,
		NegativeCacheTTL: 10 * time.Second,
	}
	return cfg
}

// seedSub writes a user with a sub as the directory commands do: the
// record's hash and the sub index.
func seedSub(t *testing.T, rs *redistest.Server, id, sub, active string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := rs.Client()
	if err := c.HSet(ctx, "gatehouse:user:"+id, "active", active, "sub", sub).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, "gatehouse:sub:"+sub, id, 0).Err(); err != nil {
		t.Fatal(err)
	}
}

// forwardAuth asks the forward-auth listener about a GET of path.
func (r *running) forwardAuth(t *testing.T, path, authorization string) (*http.Response, string) {
	t.Helper()
	return r.forwardAuthMethod(t, "GET", path, authorization)
}

// forwardAuthMethod asks the forward-auth listener about method on path,
// as nginx's auth_request does.
func (r *running) forwardAuthMethod(t *testing.T, method, path, authorization string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+r.srv.HTTPAddr().String()+"/check", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Original-Method", method)
	req.Header.Set("X-Original-URI", path)
	req.Header.Set("Authorization", authorization)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// TestOIDCTwoReplicas: two gatehouse replicas share one real Redis; an
// access token introspected by the first (gRPC) is allowed by the second
// (forward-auth) without a second introspection, no token text reaches
// Redis or the logs, and the provider going down leaves cached verdicts
// served and new tokens answered 503.
func TestOIDCTwoReplicas(t *testing.T) {
	rs := redistest.Start(t)
	p := oidctest.New(t)
	seedSub(t, rs, activeUser, "sub-ann", "1")
	seedSub(t, rs, inactiveUser, "sub-bob", "0")
	const tokAnn, tokBob, tokNobody = "ann-opaque-access-token-1234567890", "bob-opaque-access-token-1234567890", "nobody-opaque-token-1234567890"
	p.SetToken(tokAnn, p.Active("sub-ann", "openid lasuite_meet rooms:list"))
	p.SetToken(tokBob, p.Active("sub-bob", "lasuite_meet rooms:list"))
	p.SetToken(tokNobody, p.Active("sub-nobody", "lasuite_meet rooms:list"))

	a := start(t, oidcConfig(t, rs, p), Options{})
	b := start(t, oidcConfig(t, rs, p), Options{})

	resp := a.checkRequest(t, "GET", "/external-api/v1.0/rooms/", "Bearer "+tokAnn, nil)
	if !allowed(resp) {
		t.Fatalf("replica A denied an active user's access token: %s", detail(t, resp))
	}
	for name, want := range map[string]string{"x-auth-user-id": activeUser, "x-auth-client-id": "docs", "x-auth-scope": "openid lasuite_meet rooms:list"} {
		if got := header(resp, name); got != want {
			t.Errorf("replica A: %s = %q, want %q", name, got, want)
		}
	}
	if n := p.Introspections(); n != 1 {
		t.Fatalf("%d introspections after the first check, want 1", n)
	}
	// The second replica, over HTTP, with the token base64-encoded as some
	// service providers send it: the same token, the shared verdict.
	hr, body := b.forwardAuth(t, "/external-api/v1.0/rooms/", "Bearer "+base64.StdEncoding.EncodeToString([]byte(tokAnn)))
	if hr.StatusCode != 200 || hr.Header.Get("X-Auth-User-Id") != activeUser {
		t.Fatalf("replica B: %d %s user %q", hr.StatusCode, body, hr.Header.Get("X-Auth-User-Id"))
	}
	if n := p.Introspections(); n != 1 {
		t.Fatalf("replica B introspected again (%d introspections): the verdict is not shared", n)
	}
	if got := metricValue(t, a, `gatehouse_oidc_introspections_total{outcome="active"}`); got != 1 {
		t.Errorf("replica A counted %v active introspections, want 1", got)
	}
	if got := metricValue(t, b, `gatehouse_oidc_cache_lookups_total{layer="shared",result="hit"}`); got != 1 {
		t.Errorf("replica B counted %v shared-cache hits, want 1", got)
	}

	// Refusals, through both adapters.
	if got := reason(t, a.checkRequest(t, "GET", "/external-api/v1.0/rooms/", "Bearer "+tokBob, nil)); got != "User account is disabled." {
		t.Errorf("inactive user: %q", got)
	}
	hr, body = b.forwardAuth(t, "/external-api/v1.0/rooms/", "Bearer "+tokNobody)
	if hr.StatusCode != 401 || !strings.Contains(body, "Login failed: No user found for the given access token.") {
		t.Errorf("unknown subject: %d %s", hr.StatusCode, body)
	}
	if got := reason(t, a.checkRequest(t, "GET", "/external-api/v1.0/rooms/", "Bearer unknown-token-0000000000", nil)); got != "Login failed" {
		t.Errorf("inactive token: %q", got)
	}
	// The route's scope applies to the introspected scopes.
	resp = a.checkRequest(t, "POST", "/external-api/v1.0/rooms/", "Bearer "+tokAnn, nil)
	if allowed(resp) || httpStatus(resp) != 403 {
		t.Errorf("create without rooms:create: allowed=%v status %d", allowed(resp), httpStatus(resp))
	}

	// Nothing of any token in Redis: keys and values.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	keys, err := rs.Client().Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte(tokAnn))
	var sawVerdict bool
	for _, k := range keys {
		dump, err := rs.Client().Dump(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range []string{tokAnn, tokBob, tokNobody} {
			if strings.Contains(k, tok) || strings.Contains(dump, tok) {
				t.Fatalf("Redis key %q holds a token's text", k)
			}
		}
		if k == "gatehouse:introspection:"+hex.EncodeToString(digest[:]) {
			sawVerdict = true
		}
	}
	if !sawVerdict {
		t.Fatalf("no verdict under the token's SHA-256 among %q", keys)
	}

	// The provider goes away: cached verdicts are still served, a new
	// token is a 503 with Retry-After on both adapters, never an allow.
	p.Close()
	if resp := b.checkRequest(t, "GET", "/external-api/v1.0/rooms/", "Bearer "+tokAnn, nil); !allowed(resp) {
		t.Fatalf("cached verdict not served while the provider is down: %s", detail(t, resp))
	}
	resp = a.checkRequest(t, "GET", "/external-api/v1.0/rooms/", "Bearer fresh-token-while-down-000000", nil)
	if allowed(resp) || httpStatus(resp) != 503 || header(resp, "retry-after") == "" {
		t.Fatalf("provider down: allowed=%v status %d retry-after %q", allowed(resp), httpStatus(resp), header(resp, "retry-after"))
	}
	hr, _ = b.forwardAuth(t, "/external-api/v1.0/rooms/", "Bearer fresh-token-while-down-000001")
	if hr.StatusCode != 503 || hr.Header.Get("Retry-After") == "" {
		t.Fatalf("provider down, forward-auth: %d retry-after %q", hr.StatusCode, hr.Header.Get("Retry-After"))
	}

	// Disabling the user takes effect at once for a cached verdict too.
	waitSubscribed(t, rs.Client(), "gatehouse:invalidate")
	hset(t, rs, activeUser, "0")
	redisDo(t, rs.Client(), "PUBLISH", "gatehouse:invalidate", "user:"+activeUser)
	eventually(t, "the disabled user is refused", func() bool {
		return reason(t, a.checkRequest(t, "GET", "/external-api/v1.0/rooms/", "Bearer "+tokAnn, nil)) == "User account is disabled."
	})

	for name, r := range map[string]*running{"A": a, "B": b} {
		logs := r.logs.String()
		for _, tok := range []string{tokAnn, tokBob, tokNobody, "fresh-token-while-down"} {
			if strings.Contains(logs, tok) {
				t.Fatalf("replica %s logged a token", name)
			}
		}
		if strings.Contains(logs, oidctest.ClientSecret) {
			t.Fatalf("replica %s logged the client secret", name)
		}
	}
	if p.BadAuth() != 0 {
		t.Fatalf("%d introspections without the client's credentials", p.BadAuth())
	}
}

// TestOIDCNeeds: the setting is refused where it cannot work.
func TestOIDCNeeds(t *testing.T) {
	rs := redistest.Start(t)
	p := oidctest.New(t)
	cfg := oidcConfig(t, rs, p)
	cfg.MeetProfile = authz.Profile202510
	if _, err := New(context.Background(), cfg.Config, nil, Options{}); err == nil {
		t.Fatal("OIDC access tokens accepted under 2025.10")
	}
	cfg = oidcConfig(t, rs, p)
	cfg.OIDC.ClientSecret = ""
	if _, err := New(context.Background(), cfg.Config, nil, Options{}); err == nil {
		t.Fatal("OIDC access tokens accepted without a client secret")
	}
}

// TestOIDCJWTAnswers: signed and encrypted answers (RFC 9701), the JWKS
// fetched once, fetched again after the provider rotates its key, and a
// plain JSON answer refused once JWTs are expected.
func TestOIDCJWTAnswers(t *testing.T) {
	rs := redistest.Start(t)
	p := oidctest.New(t)
	seedSub(t, rs, activeUser, "sub-ann", "1")
	key := oidctest.RSAKey(t)
	p.UseJWT(&key.PublicKey)
	cfg := oidcConfig(t, rs, p)
	cfg.OIDC.JWKSURL = p.JWKSURL()
	cfg.OIDC.EncryptionKey = key
	clock := testkit.NewClock(time.Now())
	r := start(t, cfg, Options{Now: clock.Now})

	ask := func(tok string) string {
		p.SetToken(tok, p.Active("sub-ann", "lasuite_meet rooms:list"))
		return reason(t, r.checkRequest(t, "GET", "/external-api/v1.0/rooms/", "Bearer "+tok, nil))
	}
	if got := ask("jwt-answer-token-1"); got != "" {
		t.Fatalf("encrypted answer refused: %q", got)
	}
	if got := ask("jwt-answer-token-2"); got != "" || p.JWKSFetches() != 1 {
		t.Fatalf("second token: %q, %d JWKS fetches, want 1", got, p.JWKSFetches())
	}
	// Within 10 s of the last fetch, an unknown kid is not fetched again
	// (a flood of made-up kids must not become a flood of JWKS requests):
	// no answer, a 503. Past that, the new key is fetched.
	p.Rotate()
	if got := ask("jwt-answer-token-3"); got != "Service temporarily unavailable." || p.JWKSFetches() != 1 {
		t.Fatalf("rotation within 10 s: %q, %d JWKS fetches, want a 503 and 1", got, p.JWKSFetches())
	}
	clock.Advance(11 * time.Second)
	if got := ask("jwt-answer-token-3b"); got != "" || p.JWKSFetches() != 2 {
		t.Fatalf("after rotation: %q, %d JWKS fetches, want 2", got, p.JWKSFetches())
	}
	// An unencrypted answer when encryption is expected: refused.
	p.UseJWT(nil)
	if got := ask("jwt-answer-token-4"); got != "Login failed" {
		t.Fatalf("signed-only answer while encryption is required: %q", got)
	}
}

// TestOIDCSubInvalidation: a subject cached as unknown is found once
// "sub:<sub>" is published (what the directory commands publish when a
// user's sub changes); with hour-long TTLs only the message can explain it.
func TestOIDCSubInvalidation(t *testing.T) {
	rs := redistest.Start(t)
	p := oidctest.New(t)
	cfg := oidcConfig(t, rs, p)
	cfg.CacheNegativeTTL = time.Hour
	r := start(t, cfg, Options{})
	const tok = "late-user-access-token-0123456789"
	p.SetToken(tok, p.Active("sub-late", "lasuite_meet rooms:list"))
	ask := func() string {
		return reason(t, r.checkRequest(t, "GET", "/external-api/v1.0/rooms/", "Bearer "+tok, nil))
	}
	if got := ask(); got != "Login failed: No user found for the given access token." {
		t.Fatalf("before the user exists: %q", got)
	}
	waitSubscribed(t, rs.Client(), "gatehouse:invalidate")
	seedSub(t, rs, activeUser, "sub-late", "1")
	if got := ask(); got == "" {
		t.Fatal("found before any invalidation: the subject cache is not in the way, the test proves nothing")
	}
	redisDo(t, rs.Client(), "PUBLISH", "gatehouse:invalidate", "sub:sub-late")
	eventually(t, "the subject is found after its invalidation", func() bool { return ask() == "" })
}

// TestOIDCRowsBothAdapters: every row of docs/oidc.md's table of answers,
// through the gRPC adapter and the forward-auth adapter of one server, with
// the same token (the second adapter gets the verdict the first cached, or,
// for failures, which are never cached, asks again).
func TestOIDCRowsBothAdapters(t *testing.T) {
	rs := redistest.Start(t)
	p := oidctest.New(t)
	seedSub(t, rs, activeUser, "sub-ann", "1")
	seedSub(t, rs, inactiveUser, "sub-bob", "0")
	r := start(t, oidcConfig(t, rs, p), Options{})
	const list, create = "/external-api/v1.0/rooms/", "POST"
	active := func(sub, scope string) map[string]any { return p.Active(sub, scope) }
	without := func(m map[string]any, k string) map[string]any { delete(m, k); return m }
	with := func(m map[string]any, k string, v any) map[string]any { m[k] = v; return m }
	rows := []struct {
		name    string
		claims  map[string]any // nil: the provider does not know the token
		status  int            // 0: the provider answers this status instead
		wwwAuth string
		method  string
		code    int
		detail  string
	}{
		{name: "allowed", claims: active("sub-ann", "lasuite_meet rooms:list"), code: 200},
		{name: "not active", code: 401, detail: "Login failed"},
		{name: "another issuer", claims: with(active("sub-ann", "lasuite_meet"), "iss", "https://elsewhere.example"), code: 401, detail: "Login failed"},
		{name: "no required scope", claims: active("sub-ann", "openid rooms:list"), code: 401, detail: "Login failed"},
		{name: "no scope", claims: without(active("sub-ann", "x"), "scope"), code: 401, detail: "Login failed"},
		{name: "no audience", claims: without(active("sub-ann", "lasuite_meet"), "client_id"), code: 401, detail: "Login failed"},
		{name: "no sub", claims: without(active("sub-ann", "lasuite_meet"), "sub"), code: 401, detail: "Login failed"},
		{name: "expired", claims: with(active("sub-ann", "lasuite_meet"), "exp", time.Now().Add(-time.Minute).Unix()), code: 401, detail: "Login failed"},
		{name: "unknown sub", claims: active("sub-nobody", "lasuite_meet"), code: 401, detail: "Login failed: No user found for the given access token."},
		{name: "inactive user", claims: active("sub-bob", "lasuite_meet rooms:list"), code: 401, detail: "User account is disabled."},
		{name: "route scope missing", claims: active("sub-ann", "lasuite_meet rooms:list"), method: create, code: 403, detail: "Insufficient permissions. Required scope: rooms:create"},
		{name: "provider 401 with a description", status: 401, wwwAuth: `Bearer error="invalid_token", error_description="Token revoked"`, code: 401, detail: "Token revoked"},
		{name: "provider 401 without a description", status: 401, wwwAuth: `Bearer error="invalid_token"`, code: 401, detail: "no error description in www-authenticate"},
		{name: "provider 401 without WWW-Authenticate", status: 401, code: 503, detail: "Service temporarily unavailable."},
		{name: "provider 500", status: 500, code: 503, detail: "Service temporarily unavailable."},
	}
	for i, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			tok := fmt.Sprintf("row-%02d-opaque-access-token", i)
			if row.claims != nil {
				p.SetToken(tok, row.claims)
			}
			p.FailWith(row.status, row.wwwAuth)
			defer p.FailWith(0, "")
			method := row.method
			if method == "" {
				method = "GET"
			}
			// gRPC.
			resp := r.checkRequest(t, method, list, "Bearer "+tok, nil)
			if row.code == 200 {
				if !allowed(resp) || header(resp, "x-auth-user-id") != activeUser {
					t.Fatalf("gRPC: allowed=%v user %q", allowed(resp), header(resp, "x-auth-user-id"))
				}
			} else if allowed(resp) || int(httpStatus(resp)) != row.code || detail(t, resp) != row.detail {
				t.Fatalf("gRPC: allowed=%v %d %q, want %d %q", allowed(resp), httpStatus(resp), reason(t, resp), row.code, row.detail)
			}
			if row.code == 401 && !strings.Contains(header(resp, "www-authenticate"), `error="invalid_token"`) {
				t.Errorf("gRPC: challenge %q", header(resp, "www-authenticate"))
			}
			if row.code == 503 && header(resp, "retry-after") == "" {
				t.Errorf("gRPC: 503 without Retry-After")
			}
			// Forward-auth.
			hr, body := r.forwardAuthMethod(t, method, list, "Bearer "+tok)
			if hr.StatusCode != row.code {
				t.Fatalf("forward-auth: %d %s, want %d", hr.StatusCode, body, row.code)
			}
			if row.code == 200 {
				if hr.Header.Get("X-Auth-User-Id") != activeUser {
					t.Fatalf("forward-auth: user %q", hr.Header.Get("X-Auth-User-Id"))
				}
				return
			}
			var d struct{ Detail string }
			if err := json.Unmarshal([]byte(body), &d); err != nil || d.Detail != row.detail {
				t.Fatalf("forward-auth: body %s, want detail %q", body, row.detail)
			}
			if row.code == 503 && hr.Header.Get("Retry-After") == "" {
				t.Errorf("forward-auth: 503 without Retry-After")
			}
		})
	}
}
