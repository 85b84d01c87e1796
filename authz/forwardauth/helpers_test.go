package forwardauth

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/authz/routes"
	"github.com/gatehouse-authz/gatehouse/internal/testkit"
	"github.com/gatehouse-authz/gatehouse/internal/testkit/tokentest"
	"github.com/gatehouse-authz/gatehouse/userstore"
)

// Test identities and secrets.
const (
	testSecret   = "test-secret-of-at-least-32-bytes!!"
	testUserID   = "6f1c2f9e-3b7a-4c52-9d0e-1a2b3c4d5e6f"
	testClientID = "app-1"
	inactiveUser = "0b5a0a59-1d0e-4b39-8e2d-7c6f5e4d3c2b"
	unknownUser  = "c3d2e1f0-0000-4000-8000-000000000000"
)

// Meet's routes (routes.Meet), and otherPath, which testRoutes adds.
const (
	roomsPath = "/external-api/v1.0/rooms/"
	roomPath  = "/external-api/v1.0/rooms/8a1b2c3d/"
	tokenPath = "/external-api/v1.0/application/token/"
	otherPath = "/external-api/v1.0/other/"
)

// testRoutes is Meet's table plus otherPath (authentication only, so that a
// token without scope has somewhere to go under /external-api/, where the
// example proxies send checks) and a DELETE-only deny under /external-api/admin/.
const testRoutes = `
include: meet
routes:
  - path: /external-api/v1.0/other/
  - prefix: /external-api/admin/
    methods: [DELETE]
    deny: true
  - prefix: /external-api/admin/
`

// testPolicy compiles testRoutes.
func testPolicy(tb testing.TB) authz.Policy {
	tb.Helper()
	t, err := routes.Parse("test-routes.yaml", "test", []byte(testRoutes))
	if err != nil {
		tb.Fatalf("routes: %v", err)
	}
	return routes.NewSet(t)
}

// testDirectory is the in-memory directory of the tests.
func testDirectory() *userstore.Memory {
	return userstore.NewMemory([]userstore.Record{
		{ID: testUserID, Active: true},
		{ID: inactiveUser, Active: false},
	}, nil)
}

// deadDirectory cannot answer, like Redis down with nothing cached.
type deadDirectory struct{}

func (deadDirectory) Lookup(context.Context, userstore.Kind, string) (userstore.Status, error) {
	return userstore.NotFound, userstore.ErrUnavailable
}

// blockingDirectory answers only when ctx ends, like a hung Redis.
type blockingDirectory struct{}

func (blockingDirectory) Lookup(ctx context.Context, _ userstore.Kind, _ string) (userstore.Status, error) {
	<-ctx.Done()
	return userstore.NotFound, errors.Join(userstore.ErrUnavailable, ctx.Err())
}

// newAuthorizer returns the real decision core with testRoutes over dir.
func newAuthorizer(tb testing.TB, dir userstore.Directory) *authz.Authorizer {
	tb.Helper()
	return newAuthorizerWith(tb, dir, testPolicy(tb))
}

// newAuthorizerWith returns the real decision core with policy over dir.
func newAuthorizerWith(tb testing.TB, dir userstore.Directory, policy authz.Policy) *authz.Authorizer {
	tb.Helper()
	a, err := authz.New(authz.Options{
		JWT: authz.JWTConfig{
			Secret:    []byte(testSecret),
			Algorithm: authz.DefaultAlgorithm,
			Issuer:    authz.DefaultIssuer,
		},
		Directory: dir,
		Policy:    policy,
	})
	if err != nil {
		tb.Fatalf("authz.New: %v", err)
	}
	return a
}

// signToken signs claims with the test secret; nil fields of the defaults
// are deleted, others override. The default scope allows listing and
// retrieving rooms, not creating them.
func signToken(tb testing.TB, override jwt.MapClaims) string {
	tb.Helper()
	return tokentest.Sign(tb, []byte(testSecret), testUserID, testClientID, "rooms:list rooms:retrieve", override)
}

// decideFunc adapts a function to Decider.
type decideFunc func(ctx context.Context, req *authz.Request) authz.Decision

func (f decideFunc) Decide(ctx context.Context, req *authz.Request) authz.Decision {
	return f(ctx, req)
}

// decide returns d for every request.
func decide(d authz.Decision) Decider {
	return decideFunc(func(context.Context, *authz.Request) authz.Decision { return d })
}

// allowAs allows every request with id.
func allowAs(id authz.Identity) Decider {
	return decide(authz.Decision{Result: authz.Allow, Reason: authz.ReasonAllowed, Status: http.StatusOK, Identity: id})
}

var testIdentity = authz.Identity{UserID: testUserID, ClientID: testClientID, Scope: "rooms:list"}

// recorder is a Decider that remembers the requests it was asked about and
// answers with d.
type recorder struct {
	d    authz.Decision
	mu   sync.Mutex
	reqs []authz.Request
}

func (r *recorder) Decide(_ context.Context, req *authz.Request) authz.Decision {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, *req)
	return r.d
}

func (r *recorder) requests() []authz.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]authz.Request(nil), r.reqs...)
}

// check sends one request to h in process and returns the recorded answer.
func check(h http.Handler, method, target string, header http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	req.Host = "meet.example.com"
	for k, v := range header {
		req.Header[http.CanonicalHeaderKey(k)] = v
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// bearer returns an Authorization header for token.
func bearer(token string) http.Header { return http.Header{"Authorization": {"Bearer " + token}} }

// merge returns the union of headers (later wins).
func merge(hs ...http.Header) http.Header {
	out := http.Header{}
	for _, h := range hs {
		for k, v := range h {
			out[http.CanonicalHeaderKey(k)] = v
		}
	}
	return out
}

// nginxHeaders describes method and uri the way the nginx example does.
func nginxHeaders(method, uri string) http.Header {
	return http.Header{"X-Original-Method": {method}, "X-Original-Uri": {uri}}
}

// traefikHeaders describes method and uri the way Traefik and Caddy do.
func traefikHeaders(method, uri string) http.Header {
	return http.Header{
		"X-Forwarded-Method": {method},
		"X-Forwarded-Uri":    {uri},
		"X-Forwarded-Host":   {"meet.example.com"},
		"X-Forwarded-Proto":  {"https"},
		"X-Forwarded-For":    {"192.0.2.1"},
	}
}

// detail decodes a deny body and fails unless it is exactly {"detail": "..."}.
func detail(tb testing.TB, body []byte) string {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		tb.Fatalf("deny body %q is not JSON: %v", body, err)
	}
	d, ok := m["detail"].(string)
	if !ok || len(m) != 1 {
		tb.Fatalf(`deny body %q is not {"detail": string}`, body)
	}
	return d
}

// logBuffer collects JSON log lines; safe for concurrent writers.
type logBuffer = testkit.LogBuffer

func newTestLogger(l *logBuffer) *slog.Logger { return testkit.NewLogger(l) }

// testCtx bounds a test's network calls.
func testCtx(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// client is the HTTP client of integration tests: bounded, no redirects
// followed (a redirect is a failure to see, not to follow).
func client() *http.Client {
	return &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// do sends method target to base with header and returns response and body.
func do(tb testing.TB, base, method, target string, header http.Header) (*http.Response, []byte) {
	tb.Helper()
	req, err := http.NewRequestWithContext(testCtx(tb), method, base+target, nil)
	if err != nil {
		tb.Fatal(err)
	}
	for k, v := range header {
		req.Header[http.CanonicalHeaderKey(k)] = v
	}
	resp, err := client().Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("read body: %v", err)
	}
	return resp, b
}
