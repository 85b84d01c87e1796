package forwardauth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatehouse-authz/gatehouse/authz"
)

// FuzzCheck sends arbitrary check requests. Whatever arrives: no panic, a
// status among 200/401/403/503, the Decider asked only about an origin-form
// path with a method, and an allow only when the Decider allowed.
func FuzzCheck(f *testing.F) {
	seeds := []struct{ method, target, origMethod, origURI, origURL, fwdMethod, fwdURI string }{
		{"GET", "/check/external-api/v1.0/rooms/", "", "", "", "", ""},
		{"GET", "/check", "POST", "/external-api/v1.0/rooms/", "", "", ""},
		{"GET", "/check", "GET", "", "https://h/external-api/", "", ""},
		{"GET", "/check", "GET", "/a", "http://h/a", "", ""},
		{"GET", "/check", "", "", "", "GET", "/allowed"},
		{"GET", "/check", "POST", "/a", "", "GET", "/b"},
		{"HEAD", "/check//x", "", "", "", "", ""},
		{"GET", "/check", "GET", "", "http://a?b/allowed", "", ""},
		{"OPTIONS", "*", "", "", "", "", ""},
		{"GET", "/healthz", "", "", "", "", ""},
		{"GET", "/check?x", "GET", "allowed", "", "", ""},
	}
	for _, s := range seeds {
		f.Add(s.method, s.target, s.origMethod, s.origURI, s.origURL, s.fwdMethod, s.fwdURI)
	}
	f.Fuzz(func(t *testing.T, method, target, origMethod, origURI, origURL, fwdMethod, fwdURI string) {
		var asked []authz.Request
		d := decideFunc(func(_ context.Context, req *authz.Request) authz.Decision {
			asked = append(asked, *req)
			if strings.HasPrefix(req.Path, "/allowed") {
				return authz.Decision{Result: authz.Allow, Status: 200, Identity: authz.Identity{UserID: req.Path, ClientID: "c"}}
			}
			return authz.Decision{Result: authz.Deny, Status: 401, Message: "no", Challenge: authz.ChallengeInvalidToken}
		})
		r := &http.Request{Method: method, RequestURI: target, Host: "h", Header: http.Header{}}
		for k, v := range map[string]string{
			"X-Original-Method": origMethod, "X-Original-Uri": origURI, "X-Original-Url": origURL,
			"X-Forwarded-Method": fwdMethod, "X-Forwarded-Uri": fwdURI,
		} {
			if v != "" {
				r.Header[k] = []string{v}
			}
		}
		w := httptest.NewRecorder()
		New(d, Options{}).ServeHTTP(w, r)

		switch w.Code {
		case 200, 401, 403, 503:
		default:
			t.Fatalf("status %d", w.Code)
		}
		if len(asked) > 1 {
			t.Fatalf("Decider asked %d times", len(asked))
		}
		for _, req := range asked {
			if req.Method == "" || !strings.HasPrefix(req.Path, "/") {
				t.Fatalf("Decider asked about method %q path %q", req.Method, req.Path)
			}
		}
		if w.Code == 200 && (len(asked) != 1 || !strings.HasPrefix(asked[0].Path, "/allowed")) {
			t.Fatalf("allowed without the Decider allowing (asked %v)", asked)
		}
		if w.Code == 200 && w.Body.Len() != 0 {
			t.Fatalf("allow with a body")
		}
	})
}
