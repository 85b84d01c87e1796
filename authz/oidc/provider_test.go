package oidc

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-authz/gatehouse/internal/testkit"
	"github.com/gatehouse-authz/gatehouse/internal/testkit/certtest"
)

func answer401(wwwAuthenticate ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for _, v := range wwwAuthenticate {
			w.Header().Add("WWW-Authenticate", v)
		}
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
	}
}

// TestProvider401: a 401 with WWW-Authenticate is a refusal carrying the
// error_description (Meet's detail); without the header it is an error.
func TestProvider401(t *testing.T) {
	rows := []struct {
		name   string
		header []string
		desc   string
		err    bool
	}{
		{name: "description", header: []string{`Bearer error="invalid_token", error_description="The access token expired"`}, desc: "The access token expired"},
		{name: "unquoted", header: []string{`Bearer error=invalid_token, error_description=expired`}, desc: "expired"},
		{name: "comma in quotes", header: []string{`Bearer realm="r", error_description="a, b", error="x"`}, desc: "a, b"},
		{name: "escaped quote", header: []string{`Bearer realm="r", error_description="say \"no\""`}, desc: `say "no"`},
		{name: "no description", header: []string{`Bearer error="invalid_token"`}, desc: noDescription},
		{name: "bare scheme", header: []string{`Bearer`}, desc: noDescription},
		{name: "repeated header joined", header: []string{`Bearer realm="x"`, `Bearer error="e", error_description="second"`}, desc: "second"},
		{name: "last wins", header: []string{`Bearer realm="r", error_description="one", error_description="two"`}, desc: "two"},
		{name: "key is case-sensitive", header: []string{`Bearer realm="r", Error_Description="x"`}, desc: noDescription},
		{name: "empty description", header: []string{`Bearer realm="r", error_description=""`}, desc: ""},
		{name: "non-ASCII description dropped", header: []string{`Bearer realm="r", error_description="jeton expiré"`}, desc: ""},
		{name: "long description dropped", header: []string{`Bearer realm="r", error_description="` + strings.Repeat("x", 257) + `"`}, desc: ""},
		{name: "longest description kept", header: []string{`Bearer realm="r", error_description="` + strings.Repeat("x", 256) + `"`}, desc: strings.Repeat("x", 256)},
		{name: "no header", err: true},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			f := newFixture(t, answer401(row.header...), nil)
			active, desc, err := f.introspect(t, newToken(t))
			if row.err {
				if err == nil {
					t.Fatalf("no error for a bare 401 (desc %q)", desc)
				}
				if f.obs.outcome(OutcomeError) != 1 {
					t.Fatalf("outcomes %v", f.obs.outcomes)
				}
				return
			}
			if err != nil || active {
				t.Fatalf("active=%v err=%v", active, err)
			}
			if desc != row.desc {
				t.Fatalf("description = %q, want %q", desc, row.desc)
			}
			if f.obs.outcome(OutcomeProvider401) != 1 {
				t.Fatalf("outcomes %v", f.obs.outcomes)
			}
		})
	}
}

// TestProviderErrors: every way of not getting an answer is an error (503),
// never a verdict, and never cached.
func TestProviderErrors(t *testing.T) {
	good := jsonAnswer(activeClaims(t0))
	rows := []struct {
		name   string
		answer http.HandlerFunc
	}{
		{name: "500", answer: rawAnswer(http.StatusInternalServerError, "oops")},
		{name: "403", answer: rawAnswer(http.StatusForbidden, `{"active":true}`)},
		{name: "204", answer: rawAnswer(http.StatusNoContent, "")},
		{name: "oversize", answer: rawAnswer(http.StatusOK, `{"active":true,"pad":"`+strings.Repeat("x", maxAnswerBytes)+`"}`)},
		{name: "redirect", answer: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
		}},
		{name: "truncated body", answer: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Length", "1000")
			_, _ = w.Write([]byte(`{"active":true`))
		}},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			// The Introspector's own client (nil HTTPClient), as in production.
			f := newFixture(t, row.answer, nil)
			token := newToken(t)
			if _, _, err := f.introspect(t, token); err == nil {
				t.Fatal("no error")
			}
			if f.obs.outcome(OutcomeError) != 1 {
				t.Fatalf("outcomes %v", f.obs.outcomes)
			}
			f.p.mu.Lock()
			followed := f.p.lastPath
			f.p.mu.Unlock()
			if followed != "" {
				t.Fatalf("redirect followed to %s", followed)
			}
			// Not cached: the provider back to good answers is asked again.
			f.p.setAnswer(good)
			if active, _, err := f.introspect(t, token); err != nil || !active {
				t.Fatalf("after recovery: active=%v err=%v", active, err)
			}
			if n := f.p.introspected.Load(); n != 2 {
				t.Fatalf("provider asked %d times, want 2", n)
			}
		})
	}
}

func TestOversizeLimitExact(t *testing.T) {
	claims := `{"active":true,"scope":"lasuite_meet","client_id":"docs","sub":"s","pad":"`
	body := claims + strings.Repeat("x", maxAnswerBytes-len(claims)-2) + `"}`
	if len(body) != maxAnswerBytes {
		t.Fatalf("body is %d bytes", len(body))
	}
	f := newFixture(t, rawAnswer(http.StatusOK, body), nil)
	if active, _, err := f.introspect(t, newToken(t)); err != nil || !active {
		t.Fatalf("answer of exactly the limit: active=%v err=%v", active, err)
	}
}

// TestSlowProvider: the timeout bounds the introspection; the caller gets
// an error, not a hang.
func TestSlowProvider(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}, func(c *Config) { c.Timeout = 200 * time.Millisecond })
	_, _, err := f.introspect(t, newToken(t))
	if err == nil {
		t.Fatal("no error from a provider slower than the timeout")
	}
	if !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "Timeout") {
		t.Fatalf("error is not a timeout: %v", err)
	}
}

// TestDeadProvider: a closed port is an error.
func TestDeadProvider(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	in, err := New(Config{IntrospectionURL: "http://" + addr + "/introspect", Issuer: testIssuer, ClientSecret: testSecret, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	token := newToken(t)
	v, err := in.Introspect(context.Background(), token)
	if err == nil || v.Active {
		t.Fatalf("dead provider: %+v, %v", v, err)
	}
	if strings.Contains(err.Error(), token) || strings.Contains(err.Error(), testSecret) {
		t.Fatalf("error leaks: %v", err)
	}
}

// TestHTTPSWithCAFile: the client built from CAFile trusts that CA, and
// only it.
func TestHTTPSWithCAFile(t *testing.T) {
	ca := certtest.NewCA(t, "idp-ca")
	p := newProvider(t, jsonAnswer(activeClaims(t0)))
	p.srv.Close()
	tlsProvider := newTLSProvider(t, p, ca)
	dir := t.TempDir()
	caFile := ca.WriteFile(t, dir, "ca.pem")
	clock := testkit.NewClock(t0)
	in, err := New(Config{IntrospectionURL: tlsProvider + "/introspect", Issuer: testIssuer, ClientSecret: testSecret, CAFile: caFile, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := in.Introspect(context.Background(), newToken(t)); err != nil || !v.Active {
		t.Fatalf("https with CAFile: %+v, %v", v, err)
	}
	other := certtest.NewCA(t, "other-ca")
	in2, err := New(Config{IntrospectionURL: tlsProvider + "/introspect", Issuer: testIssuer, ClientSecret: testSecret, CAFile: other.WriteFile(t, dir, "other.pem"), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := in2.Introspect(context.Background(), newToken(t)); err == nil || v.Active {
		t.Fatalf("https with the wrong CA: %+v, %v", v, err)
	}
}

// newTLSProvider serves p's handler over TLS with a certificate of ca.
func newTLSProvider(t *testing.T, p *provider, ca *certtest.CA) string {
	t.Helper()
	pair := ca.Server(t, "idp")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: p.srv.Config.Handler, ReadHeaderTimeout: 5 * time.Second}
	srv.TLSConfig = tlsConfig(pair)
	go func() { _ = srv.ServeTLS(l, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	return "https://" + l.Addr().String()
}

func tlsConfig(pair certtest.Pair) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{pair.TLS}, MinVersion: tls.VersionTLS12}
}

func TestWWWAuthenticateParam(t *testing.T) {
	rows := []struct {
		h, want string
		found   bool
	}{
		{`Bearer error_description="x"`, "", false}, // key is "Bearer error_description"
		{`Bearer realm="r",error_description="x"`, "x", true},
		{`Bearer realm="r", error_description = "x"`, "", false}, // key "error_description "
		{`Bearer realm="r", error_description="x`, `"x`, true},   // unbalanced: kept as Python does
		{`Bearer realm="r", error_description="`, "", true},      // a lone quote: Python's v[1:-1]
		{`Bearer realm="r", garbage, error_description="y"`, "y", true},
		{`Bearer realm="a\\b", error_description="c\\d"`, `c\d`, true},
	}
	for _, row := range rows {
		got, found := wwwAuthenticateParam(row.h, "error_description")
		if got != row.want || found != row.found {
			t.Errorf("%s: got %q,%v want %q,%v", row.h, got, found, row.want, row.found)
		}
	}
}
