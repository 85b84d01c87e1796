package oidc

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestJSONAnswerChecks runs every check of a JSON answer (RFC 7662) against
// a provider over loopback: each row changes one claim of a good answer.
func TestJSONAnswerChecks(t *testing.T) {
	del := struct{}{} // marks a claim to remove
	rows := []struct {
		name   string
		change map[string]any
		raw    string // the whole body, instead of claims
		active bool
	}{
		{name: "good", active: true},
		{name: "active false", change: map[string]any{"active": false}},
		{name: "active absent", change: map[string]any{"active": del}},
		{name: "active string", change: map[string]any{"active": "yes"}},
		{name: "active 1", change: map[string]any{"active": 1}},
		{name: "wrong iss", change: map[string]any{"iss": "https://evil.example"}},
		{name: "iss not a string", change: map[string]any{"iss": 1}},
		{name: "iss absent", change: map[string]any{"iss": del}, active: true},
		{name: "no scope", change: map[string]any{"scope": del}},
		{name: "scope a list", change: map[string]any{"scope": []string{"lasuite_meet"}}},
		{name: "scope disjoint", change: map[string]any{"scope": "openid email"}},
		{name: "scope only required", change: map[string]any{"scope": "lasuite_meet"}, active: true},
		{name: "scope double space", change: map[string]any{"scope": "openid  lasuite_meet"}, active: true},
		{name: "scope tab is not a separator", change: map[string]any{"scope": "openid\tlasuite_meet"}},
		{name: "scope prefix is not the scope", change: map[string]any{"scope": "lasuite_meet:read"}},
		{name: "audience missing", change: map[string]any{"client_id": del}},
		{name: "audience empty", change: map[string]any{"client_id": ""}},
		{name: "audience list", change: map[string]any{"client_id": []string{"docs", "drive"}}, active: true},
		{name: "audience empty list", change: map[string]any{"client_id": []string{}}},
		{name: "audience list with empty", change: map[string]any{"client_id": []string{"docs", ""}}},
		{name: "audience number", change: map[string]any{"client_id": 7}},
		{name: "sub missing", change: map[string]any{"sub": del}},
		{name: "sub empty", change: map[string]any{"sub": ""}},
		{name: "sub number", change: map[string]any{"sub": 42}},
		{name: "sub with newline", change: map[string]any{"sub": "a\nb"}},
		{name: "exp past", change: map[string]any{"exp": t0.Add(-time.Second).Unix()}},
		{name: "exp now", change: map[string]any{"exp": t0.Unix()}},
		{name: "exp future", change: map[string]any{"exp": t0.Add(time.Minute).Unix()}, active: true},
		{name: "exp fractional future", change: map[string]any{"exp": float64(t0.Unix()) + 0.5}, active: true},
		{name: "exp string", change: map[string]any{"exp": "9999999999"}},
		{name: "exp absent", change: map[string]any{"exp": del}, active: true},
		{name: "not JSON", raw: "active=true"},
		{name: "JSON array", raw: `[{"active":true}]`},
		{name: "trailing data", raw: `{"active":true,"iss":"` + testIssuer + `","scope":"lasuite_meet","client_id":"docs","sub":"s"} {}`},
		{name: "duplicate key last wins false", raw: `{"active":true,"scope":"lasuite_meet","client_id":"docs","sub":"s","active":false}`},
		{name: "duplicate key last wins true", raw: `{"active":false,"scope":"lasuite_meet","client_id":"docs","sub":"s","active":true}`, active: true},
		{name: "lone surrogate in sub", raw: `{"active":true,"scope":"lasuite_meet","client_id":"docs","sub":"a\ud800"}`},
		{name: "invalid UTF-8 in an unused claim", raw: "{\"active\":true,\"scope\":\"lasuite_meet\",\"client_id\":\"docs\",\"sub\":\"a\",\"name\":\"\xe9\"}"},
		{name: "invalid UTF-8", raw: "{\"active\":true,\"scope\":\"lasuite_meet\",\"client_id\":\"docs\",\"sub\":\"a\xff\"}"},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			answer := rawAnswer(http.StatusOK, row.raw)
			if row.raw == "" {
				claims := activeClaims(t0)
				for k, v := range row.change {
					if v == del {
						delete(claims, k)
					} else {
						claims[k] = v
					}
				}
				answer = jsonAnswer(claims)
			}
			f := newFixture(t, answer, nil)
			token := newToken(t)
			v, err := f.in.Introspect(context.Background(), token)
			if err != nil {
				t.Fatalf("Introspect: %v", err)
			}
			if v.Active != row.active {
				t.Fatalf("Active = %v, want %v (%+v)", v.Active, row.active, v)
			}
			want := "refused"
			if row.active {
				want = "active"
			}
			if f.obs.outcome(want) != 1 {
				t.Fatalf("outcome %q not observed: %v", want, f.obs.outcomes)
			}
			if !v.Active {
				if v.Description != "" || v.Sub != "" || v.Audience != "" || v.Scope != "" || !v.Expiry.IsZero() {
					t.Fatalf("refusal carries claims: %+v", v)
				}
			}
		})
	}
}

func TestJSONAnswerVerdict(t *testing.T) {
	claims := activeClaims(t0)
	claims["client_id"] = []string{"docs", "drive"}
	claims["scope"] = "openid  lasuite_meet"
	f := newFixture(t, jsonAnswer(claims), nil)
	v, err := f.in.Introspect(context.Background(), newToken(t))
	if err != nil {
		t.Fatal(err)
	}
	if !v.Active || v.Sub != "sub-1" || v.Audience != "docs drive" || v.Scope != "openid  lasuite_meet" ||
		!v.Expiry.Equal(t0.Add(time.Hour)) || v.Description != "" {
		t.Fatalf("verdict = %+v", v)
	}
}

func TestConfiguredAudienceClaimAndScopes(t *testing.T) {
	claims := activeClaims(t0)
	claims["aud"] = "visio"
	claims["scope"] = "groups"
	f := newFixture(t, jsonAnswer(claims), func(c *Config) {
		c.AudienceClaim = "aud"
		c.RequiredScopes = []string{"lasuite_meet", "groups"}
	})
	v, err := f.in.Introspect(context.Background(), newToken(t))
	if err != nil || !v.Active || v.Audience != "visio" {
		t.Fatalf("verdict = %+v, %v", v, err)
	}
}

// TestClientSecretPost: what the provider sees, as django-lasuite sends it.
func TestClientSecretPost(t *testing.T) {
	f := newFixture(t, jsonAnswer(activeClaims(t0)), nil)
	token := newToken(t)
	if active, _, err := f.introspect(t, token); err != nil || !active {
		t.Fatalf("active=%v err=%v", active, err)
	}
	form, h := f.p.lastRequest()
	if got := h.Get("Content-Type"); got != "application/x-www-form-urlencoded" {
		t.Errorf("Content-Type = %q", got)
	}
	if got := h.Get("Accept"); got != "application/json" {
		t.Errorf("Accept = %q", got)
	}
	if h.Get("Authorization") != "" {
		t.Errorf("Authorization sent with client_secret_post")
	}
	want := url.Values{"client_id": {"meet"}, "client_secret": {testSecret}, "token": {token}}
	if form.Encode() != want.Encode() {
		t.Errorf("form = %v, want %v", form, want)
	}
}

// TestClientSecretBasic: RFC 6749 §2.3.1, id and secret form-encoded
// inside the Basic credentials; the form has only the token.
func TestClientSecretBasic(t *testing.T) {
	f := newFixture(t, jsonAnswer(activeClaims(t0)), func(c *Config) {
		c.ClientAuth = ClientSecretBasic
		c.ClientID = "meet app"
	})
	token := newToken(t)
	if active, _, err := f.introspect(t, token); err != nil || !active {
		t.Fatalf("active=%v err=%v", active, err)
	}
	form, h := f.p.lastRequest()
	if want := (url.Values{"token": {token}}); form.Encode() != want.Encode() {
		t.Errorf("form = %v, want only the token", form)
	}
	wantCreds := url.QueryEscape("meet app") + ":" + url.QueryEscape(testSecret)
	if got, want := h.Get("Authorization"), "Basic "+base64.StdEncoding.EncodeToString([]byte(wantCreds)); got != want {
		t.Errorf("Authorization = %q, want %q", got, want)
	}
	if !strings.Contains(wantCreds, "meet+app") || !strings.Contains(wantCreds, "%3A") {
		t.Fatalf("test secret does not exercise the encoding: %q", wantCreds)
	}
}
