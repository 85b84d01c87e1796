package forwardauth

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strconv"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/authz/extauthz"
	"github.com/gatehouse-authz/gatehouse/internal/testkit"
	"github.com/gatehouse-authz/gatehouse/userstore"
)

// decisionCase is one row of the decision table (docs/design.md#decision-order) run through both adapters.
type decisionCase struct {
	name          string
	method, path  string
	authorization string // "" sends no header
	dir           userstore.Directory
	status        int
	detail        string // "" on allow
}

func decisionCases(t *testing.T) []decisionCase {
	t.Helper()
	good := "Bearer " + signToken(t, nil)
	return []decisionCase{
		{"public token endpoint", "POST", tokenPath, "", nil, 200, ""},
		{"missing credentials", "GET", roomsPath, "", nil, 401, "Authentication credentials were not provided."},
		{"not bearer", "GET", roomsPath, "Basic abc", nil, 401, "Authentication credentials were not provided."},
		{"invalid header", "GET", roomsPath, "Bearer a b", nil, 401, "Invalid token header."},
		{"expired", "GET", roomsPath, "Bearer " + signToken(t, jwt.MapClaims{"exp": time.Now().Add(-time.Minute).Unix()}), nil, 401, "Token expired."},
		{"bad signature", "GET", roomsPath, good + "x", nil, 401, "Invalid token."},
		{"no user_id", "GET", roomsPath, "Bearer " + signToken(t, jwt.MapClaims{"user_id": nil}), nil, 401, "Invalid token claims."},
		{"not delegated", "GET", roomsPath, "Bearer " + signToken(t, jwt.MapClaims{"delegated": "true"}), nil, 401, "Invalid token type."},
		{"unknown user", "GET", roomsPath, "Bearer " + signToken(t, jwt.MapClaims{"user_id": unknownUser}), nil, 401, "User not found."},
		{"inactive user", "GET", roomsPath, "Bearer " + signToken(t, jwt.MapClaims{"user_id": inactiveUser}), nil, 401, "User account is disabled."},
		{"no scope", "GET", roomsPath, "Bearer " + signToken(t, jwt.MapClaims{"scope": nil}), nil, 403, "Insufficient permissions."},
		{"missing scope", "POST", roomsPath, good, nil, 403, "Insufficient permissions. Required scope: rooms:create"},
		{"unknown action", "DELETE", roomPath, good, nil, 403, "Insufficient permissions. Unknown action."},
		{"allowed list", "GET", roomsPath + "?page=2", good, nil, 200, ""},
		{"allowed HEAD", "HEAD", roomPath, good, nil, 200, ""},
		{"allowed without scope on an authenticate-only path", "GET", otherPath, "Bearer " + signToken(t, jwt.MapClaims{"scope": nil}), nil, 200, ""},
		{"directory down", "GET", roomsPath, good, deadDirectory{}, 503, "Service temporarily unavailable."},
	}
}

// TestSameAnswerAsGRPC runs every row of the decision table through the
// HTTP handler (in each of its three modes) and through the gRPC adapter,
// with the same authorizer, and requires the same status, body, challenge
// and Retry-After.
func TestSameAnswerAsGRPC(t *testing.T) {
	for _, c := range decisionCases(t) {
		t.Run(c.name, func(t *testing.T) {
			dir := c.dir
			if dir == nil {
				dir = testDirectory()
			}
			a := newAuthorizer(t, dir)
			realm := "meet"

			resp, err := extauthz.New(a, extauthz.Options{Realm: realm}).Check(context.Background(), checkRequest(c))
			if err != nil {
				t.Fatalf("gRPC Check: %v", err)
			}
			grpcStatus, grpcHeaders, grpcBody := grpcAnswer(resp)
			if grpcStatus != c.status {
				t.Fatalf("gRPC status %d, want %d (test table out of date?)", grpcStatus, c.status)
			}

			h := New(a, Options{Realm: realm})
			var auth http.Header
			if c.authorization != "" {
				auth = http.Header{"Authorization": {c.authorization}}
			}
			modes := map[string]*httptest.ResponseRecorder{
				"http_service": check(h, c.method, "/check"+c.path, auth),
				"x-original":   check(h, "GET", "/check", merge(auth, nginxHeaders(c.method, c.path))),
				"x-forwarded":  check(h, "GET", "/check", merge(auth, traefikHeaders(c.method, c.path))),
			}
			for mode, w := range modes {
				if w.Code != c.status {
					t.Errorf("%s: status %d, want %d", mode, w.Code, c.status)
					continue
				}
				for _, name := range []string{"www-authenticate", "retry-after", "content-type"} {
					if got, want := w.Header().Get(name), grpcHeaders[name]; got != want {
						t.Errorf("%s: %s %q, gRPC sends %q", mode, name, got, want)
					}
				}
				if c.status == 200 {
					continue
				}
				body := w.Body.Bytes()
				if c.method == "HEAD" && mode == "http_service" {
					body = []byte(grpcBody) // HEAD: no body, checked elsewhere
				}
				if string(body) != grpcBody {
					t.Errorf("%s: body %s, gRPC sends %s", mode, body, grpcBody)
				}
				if got := detail(t, body); got != c.detail {
					t.Errorf("%s: detail %q, want %q", mode, got, c.detail)
				}
			}
		})
	}
}

// checkRequest builds the CheckRequest Envoy sends for c.
func checkRequest(c decisionCase) *authv3.CheckRequest {
	headers := map[string]string{":method": c.method, ":path": c.path, ":authority": "meet.example.com"}
	if c.authorization != "" {
		headers["authorization"] = c.authorization
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: c.method, Path: c.path, Host: "meet.example.com", Headers: headers},
	}}}
}

// grpcAnswer flattens a CheckResponse to the HTTP answer Envoy sends.
func grpcAnswer(resp *authv3.CheckResponse) (status int, headers map[string]string, body string) {
	headers = map[string]string{}
	if ok := resp.GetOkResponse(); ok != nil || resp.GetStatus().GetCode() == 0 {
		return 200, headers, ""
	}
	d := resp.GetDeniedResponse()
	for _, h := range d.GetHeaders() {
		headers[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	return int(d.GetStatus().GetCode()), headers, d.GetBody()
}

// TestAllowAnswer: exactly 200, no body, identity headers; absent values
// are not sent and are listed for Envoy to remove.
func TestAllowAnswer(t *testing.T) {
	cases := []struct {
		name   string
		id     authz.Identity
		set    map[string]string
		remove string
	}{
		{"full identity", testIdentity,
			map[string]string{"X-Auth-User-Id": testUserID, "X-Auth-Client-Id": testClientID, "X-Auth-Scope": "rooms:list"}, ""},
		{"token without scope", authz.Identity{UserID: testUserID, ClientID: testClientID},
			map[string]string{"X-Auth-User-Id": testUserID, "X-Auth-Client-Id": testClientID}, "x-auth-scope"},
		{"public route", authz.Identity{}, nil, "x-auth-user-id,x-auth-client-id,x-auth-scope"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, method := range []string{"GET", "HEAD", "POST"} {
				w := check(New(allowAs(c.id), Options{}), method, "/check/x", nil)
				res := w.Result()
				if res.StatusCode != http.StatusOK {
					t.Fatalf("%s: status %d", method, res.StatusCode)
				}
				if w.Body.Len() != 0 {
					t.Errorf("%s: body %q", method, w.Body)
				}
				want := map[string]string{}
				for k, v := range c.set {
					want[k] = v
				}
				if c.remove != "" {
					want["X-Envoy-Auth-Headers-To-Remove"] = c.remove
				}
				want["Content-Length"] = "0"
				if len(res.Header) != len(want) {
					t.Errorf("%s: headers %v, want exactly %v", method, res.Header, want)
				}
				for k, v := range want {
					if got := res.Header[k]; len(got) != 1 || got[0] != v {
						t.Errorf("%s: %s = %q, want %q", method, k, got, v)
					}
				}
			}
		})
	}
}

// TestIdentityHeaderNames: configured names, canonicalised; the removal list
// never names a header that is also set.
func TestIdentityHeaderNames(t *testing.T) {
	h := New(allowAs(authz.Identity{UserID: "u", ClientID: "c"}), Options{
		UserIDHeader: "x-remote-user", ClientIDHeader: " X-Remote-App ", ScopeHeader: "x-remote-user",
	})
	w := check(h, "GET", "/check/x", nil)
	if got := w.Header()["X-Remote-User"]; len(got) != 1 || got[0] != "u" {
		t.Errorf("X-Remote-User = %q", got)
	}
	if got := w.Header().Get("X-Remote-App"); got != "c" {
		t.Errorf("X-Remote-App = %q", got)
	}
	if got := w.Header().Get("X-Envoy-Auth-Headers-To-Remove"); got != "" {
		t.Errorf("removes %q although the shared name is set", got)
	}
	for _, bad := range []string{"X Auth", "X-Auth:", "X-Ä"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("header name %q accepted", bad)
				}
			}()
			New(allowAs(testIdentity), Options{UserIDHeader: bad})
		}()
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("bad prefix accepted")
			}
		}()
		New(allowAs(testIdentity), Options{PathPrefix: "check"})
	}()
}

// TestOnlyKnownStatuses: whatever the Decider returns, the handler answers
// 200, 401, 403 or 503 and never allows unless the Decision says Allow.
func TestOnlyKnownStatuses(t *testing.T) {
	cases := []struct {
		name   string
		d      authz.Decision
		status int
		detail string
	}{
		{"zero decision", authz.Decision{}, 503, "Internal error."},
		{"deny with 200", authz.Decision{Result: authz.Deny, Status: 200, Message: "x"}, 503, "Internal error."},
		{"deny with 302", authz.Decision{Result: authz.Deny, Status: 302, Message: "x"}, 503, "Internal error."},
		{"deny with 400", authz.Decision{Result: authz.Deny, Status: 400, Message: "x"}, 503, "Internal error."},
		{"deny with 404", authz.Decision{Result: authz.Deny, Status: 404, Message: "x"}, 503, "Internal error."},
		{"deny with 500", authz.Decision{Result: authz.Deny, Status: 500, Message: "x"}, 503, "Internal error."},
		{"unavailable without status", authz.Decision{Result: authz.Unavailable, Message: "Service temporarily unavailable."}, 503, "Service temporarily unavailable."},
		{"allow with 204 is still exactly 200", authz.Decision{Result: authz.Allow, Status: 204}, 200, ""},
		{"deny 401", authz.Decision{Result: authz.Deny, Status: 401, Message: "m"}, 401, "m"},
		{"deny 403", authz.Decision{Result: authz.Deny, Status: 403, Message: "m"}, 403, "m"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := check(New(decide(c.d), Options{}), "GET", "/check/x", nil)
			if w.Code != c.status {
				t.Fatalf("status %d, want %d", w.Code, c.status)
			}
			if c.status == 200 {
				return
			}
			if got := detail(t, w.Body.Bytes()); got != c.detail {
				t.Errorf("detail %q, want %q", got, c.detail)
			}
			if got := w.Header().Get("Content-Type"); got != "application/json" {
				t.Errorf("content-type %q", got)
			}
			if got := w.Header().Get("Content-Length"); got != strconv.Itoa(w.Body.Len()) {
				t.Errorf("content-length %q for %d bytes", got, w.Body.Len())
			}
			if ra := w.Header().Get("Retry-After"); (c.status == 503) != (ra == "1") {
				t.Errorf("Retry-After %q with status %d", ra, c.status)
			}
			if w.Header().Get("Location") != "" {
				t.Error("deny carries a Location")
			}
		})
	}
}

// TestHEADLikeGET: a HEAD check gets the GET answer's status and headers,
// Content-Length included, and no body.
func TestHEADLikeGET(t *testing.T) {
	a := newAuthorizer(t, testDirectory())
	srv := httptest.NewServer(New(a, Options{}))
	t.Cleanup(srv.Close)
	noScope := "Bearer " + signToken(t, jwt.MapClaims{"scope": nil})
	for _, c := range []struct {
		name   string
		auth   string
		status int
	}{
		{"missing credentials", "", 401},
		{"no scope", noScope, 403},
		{"allowed", "Bearer " + signToken(t, nil), 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			var hdr http.Header
			if c.auth != "" {
				hdr = http.Header{"Authorization": {c.auth}}
			}
			get, getBody := do(t, srv.URL, "GET", "/check"+roomsPath, hdr)
			head, headBody := do(t, srv.URL, "HEAD", "/check"+roomsPath, hdr)
			if get.StatusCode != c.status || head.StatusCode != c.status {
				t.Fatalf("GET %d HEAD %d, want %d", get.StatusCode, head.StatusCode, c.status)
			}
			if len(headBody) != 0 {
				t.Errorf("HEAD body %q", headBody)
			}
			for _, name := range []string{"Content-Type", "Content-Length", "Www-Authenticate", "Retry-After", "X-Auth-User-Id", "X-Auth-Scope"} {
				if g, h := get.Header.Get(name), head.Header.Get(name); g != h {
					t.Errorf("%s: GET %q, HEAD %q", name, g, h)
				}
			}
			if c.status != 200 && get.Header.Get("Content-Length") != strconv.Itoa(len(getBody)) {
				t.Errorf("GET Content-Length %q for %d bytes", get.Header.Get("Content-Length"), len(getBody))
			}
		})
	}
}

// TestNoRedirectsNoOpsEndpoints serves the handler from a real net/http
// server and sends it paths that a ServeMux would clean or redirect, and the
// ops endpoints: every answer is a check answer (200/401/403/503), never a
// redirect, never a health or metrics page.
func TestNoRedirectsNoOpsEndpoints(t *testing.T) {
	a := newAuthorizer(t, testDirectory())
	srv := httptest.NewServer(New(a, Options{}))
	t.Cleanup(srv.Close)
	for _, target := range []string{
		"/healthz", "/readyz", "/metrics", "/check/healthz", "/check/readyz", "/check/metrics",
		"/check/../healthz", "/check/./x", "/check//x", "/check", "/check/", "//check/x", "/CHECK/x",
		"/check/external-api/v1.0/rooms", // Meet redirects to the slash form; gatehouse must not
	} {
		resp, body := do(t, srv.URL, "GET", target, nil)
		switch resp.StatusCode {
		case 401, 403:
		default:
			t.Errorf("%s: status %d", target, resp.StatusCode)
			continue
		}
		if resp.Header.Get("Location") != "" {
			t.Errorf("%s: Location %q", target, resp.Header.Get("Location"))
		}
		detail(t, body)
	}
}

// TestTimeout: a directory that hangs yields 503 with Retry-After once the
// decision's bound passes, and the Decider's context carries the bound.
func TestTimeout(t *testing.T) {
	h := New(newAuthorizer(t, blockingDirectory{}), Options{Timeout: 20 * time.Millisecond})
	w := check(h, "GET", "/check"+roomsPath, bearer(signToken(t, nil)))
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("status %d Retry-After %q, want 503 and 1", w.Code, w.Header().Get("Retry-After"))
	}
	if got := detail(t, w.Body.Bytes()); got != "Service temporarily unavailable." {
		t.Errorf("detail %q", got)
	}

	for _, c := range []struct {
		timeout time.Duration
		want    bool
		max     time.Duration
	}{{0, true, DefaultTimeout}, {5 * time.Second, true, 5 * time.Second}, {-1, false, 0}} {
		var deadline time.Time
		var has bool
		start := time.Now()
		h := New(decideFunc(func(ctx context.Context, _ *authz.Request) authz.Decision {
			deadline, has = ctx.Deadline()
			return authz.Decision{Result: authz.Allow, Status: 200}
		}), Options{Timeout: c.timeout})
		check(h, "GET", "/check/x", nil)
		if has != c.want {
			t.Errorf("Timeout %v: deadline set %v, want %v", c.timeout, has, c.want)
		}
		if has && deadline.After(start.Add(c.max).Add(time.Second)) {
			t.Errorf("Timeout %v: deadline %v after start", c.timeout, deadline.Sub(start))
		}
	}
}

// TestPanicDenies: a panicking Decider yields 503, logged without the panic
// value (it may hold request data).
func TestPanicDenies(t *testing.T) {
	var logs logBuffer
	h := New(decideFunc(func(context.Context, *authz.Request) authz.Decision {
		panic("Bearer secret-token")
	}), Options{Logger: newTestLogger(&logs)})
	w := check(h, "GET", "/check/x", bearer("secret-token"))
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("status %d, want 503 with Retry-After", w.Code)
	}
	if got := detail(t, w.Body.Bytes()); got != "Internal error." {
		t.Errorf("detail %q", got)
	}
	if strings.Contains(logs.String(), "secret-token") {
		t.Errorf("log holds the panic value: %s", logs.String())
	}
	if !strings.Contains(logs.String(), "panic recovered") {
		t.Errorf("panic not logged: %s", logs.String())
	}
}

// TestBadIdentityDenied: identity values that cannot be header values are
// refused like the gRPC adapter refuses them.
func TestBadIdentityDenied(t *testing.T) {
	for _, id := range []authz.Identity{
		{UserID: "u\r\nX-Injected: 1", ClientID: "c"},
		{UserID: "u", ClientID: "c\x00"},
		{UserID: "u", ClientID: "c", Scope: "\xff"},
	} {
		w := check(New(allowAs(id), Options{}), "GET", "/check/x", nil)
		if w.Code != http.StatusUnauthorized {
			t.Errorf("%q: status %d, want 401", id, w.Code)
			continue
		}
		if got := detail(t, w.Body.Bytes()); got != "Invalid token claims." {
			t.Errorf("%q: detail %q", id, got)
		}
		for k := range w.Header() {
			if strings.HasPrefix(k, "X-Auth-") || strings.HasPrefix(k, "X-Injected") {
				t.Errorf("%q: header %s sent on a deny", id, k)
			}
		}
	}
}

// TestBadRealmFallsBack: a realm that cannot be a header value still gives a
// bare Bearer challenge.
func TestBadRealmFallsBack(t *testing.T) {
	h := New(newAuthorizer(t, testDirectory()), Options{Realm: "a\nb"})
	w := check(h, "GET", "/check"+roomsPath, nil)
	if got := w.Header().Get("Www-Authenticate"); got != "Bearer" {
		t.Errorf("WWW-Authenticate %q", got)
	}
}

// TestDecisionLog: one line per check with the documented fields, at the
// decision's level, never the token, the Authorization header or the query
// string.
func TestDecisionLog(t *testing.T) {
	token := signToken(t, nil)
	var logs logBuffer
	h := New(newAuthorizer(t, testDirectory()), Options{Logger: newTestLogger(&logs)})
	check(h, "GET", "/check"+roomsPath+"?access_token=query-secret", merge(bearer(token), http.Header{"X-Request-Id": {"req-1"}}))
	check(h, "GET", "/check", merge(bearer(token), nginxHeaders("POST", roomsPath+"?k=query-secret")))
	check(h, "GET", "/elsewhere?query-secret", bearer(token))

	lines := logs.Lines(t)
	if len(lines) != 3 {
		t.Fatalf("%d lines: %s", len(lines), logs.String())
	}
	want := []map[string]any{
		{"mode": "http_service", "result": "allow", "reason": "allowed", "status": 200.0, "method": "GET", "path": roomsPath,
			"user_id": testUserID, "client_id": testClientID, "request_id": "req-1", "level": "DEBUG", "msg": "forward-auth decision"},
		{"mode": "x-original", "result": "deny", "reason": "missing_scope", "status": 403.0, "method": "POST", "path": roomsPath,
			"user_id": testUserID, "client_id": testClientID, "level": "INFO"},
		{"mode": "none", "result": "deny", "reason": "bad_request", "status": 403.0, "problem": problemOutsidePrefix, "check_path": "/elsewhere", "level": "INFO"},
	}
	for i, w := range want {
		for k, v := range w {
			if lines[i][k] != v {
				t.Errorf("line %d: %s = %v, want %v", i, k, lines[i][k], v)
			}
		}
	}
	for _, secret := range []string{token, "query-secret", "Bearer"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("log contains %q: %s", secret, logs.String())
		}
	}

	// At Info, as in production: allows are not logged, denies are.
	var info logBuffer
	h = New(newAuthorizer(t, testDirectory()), Options{Logger: testkit.NewLoggerAt(&info, slog.LevelInfo)})
	check(h, "GET", "/check"+roomsPath, bearer(token))
	if info.String() != "" {
		t.Errorf("an allow was logged at Info: %s", info.String())
	}
	check(h, "GET", "/check"+roomsPath, bearer("forged"))
	if lines := info.Lines(t); len(lines) != 1 || lines[0]["level"] != "INFO" || lines[0]["reason"] != "invalid_token" {
		t.Errorf("a deny at Info logged %s", info.String())
	}
}

// TestDecisionLogBudget: below Debug, a flood of denies writes at most the
// per-second budget of lines (twice it if the burst spans a second), and
// a negative budget none.
func TestDecisionLogBudget(t *testing.T) {
	var logs logBuffer
	h := New(newAuthorizer(t, testDirectory()), Options{Logger: testkit.NewLoggerAt(&logs, slog.LevelInfo), LogLinesPerSecond: 2})
	for range 50 {
		check(h, "GET", "/check"+roomsPath, bearer("forged"))
	}
	denies := 0
	for _, l := range logs.Lines(t) {
		if l["msg"] == "forward-auth decision" {
			denies++
		}
	}
	if denies < 2 || denies > 4 {
		t.Fatalf("50 denies with a budget of 2 lines a second wrote %d lines:\n%s", denies, logs.String())
	}

	var none logBuffer
	h = New(newAuthorizer(t, testDirectory()), Options{Logger: testkit.NewLoggerAt(&none, slog.LevelInfo), LogLinesPerSecond: -1})
	check(h, "GET", "/check"+roomsPath, bearer("forged"))
	if none.String() != "" {
		t.Errorf("a negative budget logged %s", none.String())
	}
}

// countingDecider has the optional Record method.
type countingDecider struct {
	Decider
	recorded []authz.Decision
}

func (c *countingDecider) Record(_ context.Context, d *authz.Decision) {
	d.DecisionID = "refused-1"
	c.recorded = append(c.recorded, *d)
}

// TestRefusedChecksAreRecorded: a Decider with Record hears about checks
// refused without asking it; its decision id reaches the log line, and
// replacing a decision keeps the id.
func TestRefusedChecksAreRecorded(t *testing.T) {
	var logs logBuffer
	d := &countingDecider{Decider: decideFunc(func(context.Context, *authz.Request) authz.Decision {
		return authz.Decision{Result: authz.Deny, Status: 418, DecisionID: "weird-1"}
	})}
	h := New(d, Options{Logger: newTestLogger(&logs)})
	if w := check(h, "GET", "/elsewhere", nil); w.Code != 403 {
		t.Fatalf("status %d", w.Code)
	}
	if len(d.recorded) != 1 || d.recorded[0].Reason != authz.ReasonBadRequest {
		t.Errorf("recorded %+v", d.recorded)
	}
	if w := check(h, "GET", "/check/x", nil); w.Code != 503 {
		t.Fatalf("status %d", w.Code)
	}
	if len(d.recorded) != 1 {
		t.Errorf("a decided check was recorded too")
	}
	lines := logs.Lines(t)
	if len(lines) != 2 || lines[0]["decision_id"] != "refused-1" || lines[1]["decision_id"] != "weird-1" ||
		lines[1]["reason"] != string(authz.ReasonInternalError) {
		t.Errorf("log lines %v", lines)
	}
}

// TestDenyDecisionIDHeader: a deny carries its decision id in
// authz.DecisionIDHeader, as the gRPC adapter's does, unless the id cannot
// be a header value.
func TestDenyDecisionIDHeader(t *testing.T) {
	if hdrDecisionID != textproto.CanonicalMIMEHeaderKey(authz.DecisionIDHeader) {
		t.Fatalf("hdrDecisionID %q is not authz.DecisionIDHeader %q", hdrDecisionID, authz.DecisionIDHeader)
	}
	for id, want := range map[string]string{"d-1": "d-1", "d\r\nX-Injected: 1": ""} {
		h := New(decideFunc(func(context.Context, *authz.Request) authz.Decision {
			return authz.Decision{Result: authz.Deny, Reason: authz.ReasonRouteDenied, Status: 403, Message: "m", DecisionID: id}
		}), Options{})
		w := check(h, "GET", "/check"+roomsPath, nil)
		if w.Code != 403 || w.Header().Get(authz.DecisionIDHeader) != want {
			t.Errorf("id %q: status %d, %s %q, want %q", id, w.Code, authz.DecisionIDHeader, w.Header().Get(authz.DecisionIDHeader), want)
		}
	}
}

// TestAbortHandlerPassedOn: net/http's http.ErrAbortHandler panic is not
// turned into an answer: net/http drops the connection instead.
func TestAbortHandlerPassedOn(t *testing.T) {
	h := New(decideFunc(func(context.Context, *authz.Request) authz.Decision {
		panic(http.ErrAbortHandler)
	}), Options{})
	defer func() {
		if p := recover(); p != http.ErrAbortHandler {
			t.Errorf("panic %v, want http.ErrAbortHandler", p)
		}
	}()
	check(h, "GET", "/check"+roomsPath, nil)
	t.Error("answered instead of aborting")
}
