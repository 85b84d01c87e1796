package adapter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/gatehouse-authz/gatehouse/authz"
)

func TestPathWithoutQuery(t *testing.T) {
	for in, want := range map[string]string{
		"/a/b?token=x": "/a/b", "/a#f?x": "/a", "/plain": "/plain", "?q": "", "": "",
	} {
		if got := PathWithoutQuery(in); got != want {
			t.Errorf("PathWithoutQuery(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHeaderName(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"", DefaultUserIDHeader},
		{"  \t", DefaultUserIDHeader},
		{"X-Remote-User", "X-Remote-User"}, // case is the caller's
		{" x-remote-user ", "x-remote-user"},
	} {
		if got, err := HeaderName(tc.name, DefaultUserIDHeader); err != nil || got != tc.want {
			t.Errorf("HeaderName(%q) = %q, %v, want %q", tc.name, got, err, tc.want)
		}
	}
	for _, bad := range []string{"X Auth", "X-Auth:", "X-Ä", "a\r\nb", "(x)"} {
		if got, err := HeaderName(bad, DefaultUserIDHeader); err == nil {
			t.Errorf("HeaderName(%q) = %q, want an error", bad, got)
		}
	}
}

func TestReplaceKeepsIDs(t *testing.T) {
	d := authz.Decision{Result: authz.Allow, Status: 200, DecisionID: "d-1",
		Identity: authz.Identity{UserID: "u", ClientID: "c", Scope: "s"}}
	got := Replace(d, authz.InvalidClaims())
	want := authz.InvalidClaims()
	want.Identity, want.DecisionID = d.Identity, d.DecisionID
	if got != want {
		t.Errorf("Replace = %+v, want %+v", got, want)
	}
}

func TestNormalizeDeny(t *testing.T) {
	only401 := func(s int) bool { return s == http.StatusUnauthorized }
	any5xx := func(s int) bool { return s >= 500 }
	internal := authz.InternalError()
	internal.DecisionID = "d-1"
	for _, tc := range []struct {
		name     string
		d        authz.Decision
		sendable func(int) bool
		want     authz.Decision
	}{
		{"sendable kept", authz.Decision{Status: 401, Message: "m", DecisionID: "d-1"}, only401,
			authz.Decision{Status: 401, Message: "m", DecisionID: "d-1"}},
		{"unsendable replaced", authz.Decision{Status: 403, Message: "m", DecisionID: "d-1"}, only401, internal},
		{"zero decision replaced", authz.Decision{DecisionID: "d-1"}, any5xx, internal},
		{"unavailable gets 503", authz.Decision{Result: authz.Unavailable, Message: "m"}, any5xx,
			authz.Decision{Result: authz.Unavailable, Status: 503, Message: "m"}},
	} {
		if got := NormalizeDeny(tc.d, tc.sendable); got != tc.want {
			t.Errorf("%s: NormalizeDeny = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestIdentitySendable(t *testing.T) {
	for id, want := range map[authz.Identity]bool{
		{}:                          true,
		{UserID: "u", Scope: "a b"}: true,
		{UserID: "u\r\nX: 1"}:       false,
		{ClientID: "c\x00"}:         false,
		{Scope: "\xff"}:             false,
	} {
		if got := IdentitySendable(&id); got != want {
			t.Errorf("IdentitySendable(%+v) = %v, want %v", id, got, want)
		}
	}
}

func TestDenyHeadersOf(t *testing.T) {
	for _, tc := range []struct {
		name  string
		d     authz.Decision
		realm string
		want  DenyHeaders
	}{
		{"401", authz.Decision{Status: 401, DecisionID: "d-1"}, "", DenyHeaders{Challenge: "Bearer", DecisionID: "d-1"}},
		{"401 realm", authz.Decision{Status: 401}, "api", DenyHeaders{Challenge: `Bearer realm="api"`}},
		{"bad realm", authz.Decision{Status: 401}, "a\nb", DenyHeaders{Challenge: "Bearer"}},
		{"403", authz.Decision{Status: 403, Challenge: authz.ChallengeNone}, "", DenyHeaders{}},
		{"503", authz.Decision{Status: 503, RetryAfterSeconds: 7}, "", DenyHeaders{RetryAfter: "7"}},
		{"bad decision id", authz.Decision{Status: 403, DecisionID: "d\r\n"}, "", DenyHeaders{}},
	} {
		if got := DenyHeadersOf(&tc.d, tc.realm); got != tc.want {
			t.Errorf("%s: DenyHeadersOf = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestDecisionAttrs(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	req := &authz.Request{Method: "GET", Path: "/rooms/?access_token=secret", Authorization: "Bearer secret"}
	d := &authz.Decision{Result: authz.Deny, Reason: authz.ReasonInvalidToken, Status: 401, DecisionID: "d-1",
		Identity: authz.Identity{UserID: "u", ClientID: "c", Scope: "secret-scope"}}
	log.LogAttrs(context.Background(), slog.LevelInfo, "x", DecisionAttrs(nil, req, d, "r-1")...)
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"result": "deny", "reason": "invalid_token", "status": 401.0, "method": "GET",
		"path": "/rooms/", "user_id": "u", "client_id": "c", "request_id": "r-1", "decision_id": "d-1"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if len(got) != len(want)+3 { // time, level, msg
		t.Errorf("attributes %v, want only %v", got, want)
	}
	if strings.Contains(buf.String(), "secret") {
		t.Errorf("log line holds a secret: %s", buf.String())
	}
}

// TestLogPanic: the line names where and what, never the panic's value.
func TestLogPanic(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	LogPanic(context.Background(), log, "Decide", errors.New("Bearer secret-token"))
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got["level"] != "ERROR" || got["where"] != "Decide" || got["panic"] != "*errors.errorString" || got["stack"] == "" {
		t.Errorf("panic line %v", got)
	}
	if strings.Contains(buf.String(), "secret-token") {
		t.Errorf("panic line holds the panic value: %s", buf.String())
	}

	var m map[string]int
	func() {
		defer func() {
			if got := DescribePanic(recover()); !strings.Contains(got, "nil map") {
				t.Errorf("DescribePanic(runtime error) = %q, want its message", got)
			}
		}()
		m["x"]++ // nil map write: a runtime error
	}()
}
