package extauthz

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/internal/testkit"
	"github.com/gatehouse-authz/gatehouse/userstore"
)

// want describes the expected CheckResponse.
type want struct {
	allow bool
	// upstream is the identity the backend must see on allow: header name to
	// value, "" meaning the header must be absent.
	upstream map[string]string
	// deny side
	code      codes.Code
	status    int
	detail    string
	challenge string // exact www-authenticate, "" for none
	// both
	reason string
	userID string // dynamic metadata user_id ("" absent)
}

// forged are identity headers a client sends to impersonate someone.
var forged = map[string]string{
	DefaultUserIDHeader:   "forged-admin",
	DefaultClientIDHeader: "forged-client",
	DefaultScopeHeader:    "admin",
}

// requestHeaders returns the fixture's headers as Envoy holds them, with
// each forged identity header sent twice (Envoy keeps both copies).
func requestHeaders(req *authv3.CheckRequest) map[string][]string {
	http := req.GetAttributes().GetRequest().GetHttp()
	out := map[string][]string{}
	for k, v := range http.GetHeaders() {
		out[k] = []string{v}
	}
	for _, h := range http.GetHeaderMap().GetHeaders() {
		k := strings.ToLower(h.GetKey())
		out[k] = append(out[k], headerValue(h))
	}
	return out
}

// addForged adds each forged identity header twice to req.
func addForged(req *authv3.CheckRequest) {
	http := req.GetAttributes().GetRequest().GetHttp()
	for k, v := range forged {
		if hm := http.GetHeaderMap(); hm != nil {
			// Mixed case: header_map keys are not guaranteed lower case.
			hm.Headers = append(hm.Headers,
				&corev3.HeaderValue{Key: strings.ToUpper(k), RawValue: []byte(v)},
				&corev3.HeaderValue{Key: k, RawValue: []byte(v + "-2")})
			continue
		}
		// The headers map joins duplicates with ",", as Envoy does.
		http.Headers[k] = v + "," + v + "-2"
	}
}

func identity(user, client, scope string) map[string]string {
	return map[string]string{DefaultUserIDHeader: user, DefaultClientIDHeader: client, DefaultScopeHeader: scope}
}

func checkResponse(t *testing.T, req *authv3.CheckRequest, resp *authv3.CheckResponse, w want) {
	t.Helper()
	mustMarshal(t, resp)
	if got := metaString(resp, metaReason); got != w.reason {
		t.Errorf("metadata reason = %q, want %q", got, w.reason)
	}
	if got := metaString(resp, metaUserID); got != w.userID {
		t.Errorf("metadata user_id = %q, want %q", got, w.userID)
	}
	for k, v := range resp.GetDynamicMetadata().GetFields() {
		if s := v.GetStringValue(); strings.Count(s, ".") == 2 && strings.HasPrefix(s, "eyJ") {
			t.Errorf("metadata %s carries a token", k)
		}
	}
	if w.allow {
		if c := resp.GetStatus().GetCode(); c != int32(codes.OK) {
			t.Fatalf("status code = %v, want OK", codes.Code(c))
		}
		if got := metaString(resp, metaResult); got != "allow" {
			t.Errorf("metadata result = %q, want allow", got)
		}
		ok := resp.GetOkResponse()
		if ok == nil {
			t.Fatalf("allow without ok_response: %v", resp)
		}
		set := responseHeaders(t, ok.GetHeaders())
		for _, name := range ok.GetHeadersToRemove() {
			if _, both := set[name]; both {
				t.Errorf("%q is both set and removed; Envoy removes after setting", name)
			}
		}
		up := upstreamHeaders(requestHeaders(req), ok)
		for name, v := range w.upstream {
			got, present := up[name]
			switch {
			case v == "" && present:
				t.Errorf("upstream %s = %q, want absent", name, got)
			case v != "" && !slices.Equal(got, []string{v}):
				t.Errorf("upstream %s = %q, want [%q]", name, got, v)
			}
		}
		return
	}

	if c := codes.Code(resp.GetStatus().GetCode()); c != w.code {
		t.Errorf("status code = %v, want %v", c, w.code)
	}
	if got := metaString(resp, metaResult); got == "allow" || got == "" {
		t.Errorf("metadata result = %q on a deny", got)
	}
	denied := resp.GetDeniedResponse()
	if denied == nil {
		t.Fatalf("deny without denied_response: %v", resp)
	}
	if got := int(denied.GetStatus().GetCode()); got != w.status {
		t.Errorf("HTTP status = %d, want %d", got, w.status)
	}
	if want := `{"detail":"` + w.detail + `"}`; denied.GetBody() != want {
		t.Errorf("body = %s, want %s", denied.GetBody(), want)
	}
	h := responseHeaders(t, denied.GetHeaders())
	if h[headerContentType] != "application/json" {
		t.Errorf("content-type = %q", h[headerContentType])
	}
	if h[headerWWWAuthenticate] != w.challenge {
		t.Errorf("www-authenticate = %q, want %q", h[headerWWWAuthenticate], w.challenge)
	}
	if _, ok := h[headerRetryAfter]; ok != (w.status == http.StatusServiceUnavailable) {
		t.Errorf("retry-after present = %v with status %d", ok, w.status)
	}
}

// TestCheckFixtures runs the real decision core behind the adapter over every
// fixture and every transport.
func TestCheckFixtures(t *testing.T) {
	srv := New(newAuthorizer(t, newFakeDir()), Options{})
	transports := checkers(t, srv)

	good := signToken(t, nil)
	const invalidToken = `Bearer error="invalid_token", error_description="Invalid token."`
	cases := []struct {
		name string
		auth *string // nil: no authorization header
		path string  // "" keeps the fixture's
		want want
	}{
		{
			name: "valid token", auth: ptr("Bearer " + good),
			want: want{allow: true, reason: "allowed", userID: testUserID,
				upstream: identity(testUserID, testClientID, testScope)},
		},
		{
			name: "scheme case-insensitive, extra whitespace", auth: ptr("bEaReR \t " + good + " "),
			want: want{allow: true, reason: "allowed", userID: testUserID,
				upstream: identity(testUserID, testClientID, testScope)},
		},
		{
			name: "token without scope", auth: ptr("Bearer " + signToken(t, jwt.MapClaims{"scope": nil})),
			want: want{allow: true, reason: "allowed", userID: testUserID,
				upstream: identity(testUserID, testClientID, "")},
		},
		{
			name: "public route without credentials", path: publicPath,
			want: want{allow: true, reason: "public", upstream: identity("", "", "")},
		},
		{
			name: "no authorization",
			want: want{code: codes.Unauthenticated, status: 401, reason: "missing_credentials",
				detail: "Authentication credentials were not provided.", challenge: "Bearer"},
		},
		{
			name: "basic scheme", auth: ptr("Basic dXNlcjpwYXNz"),
			want: want{code: codes.Unauthenticated, status: 401, reason: "missing_credentials",
				detail: "Authentication credentials were not provided.", challenge: "Bearer"},
		},
		{
			name: "three words", auth: ptr("Bearer " + good + " extra"),
			want: want{code: codes.Unauthenticated, status: 401, reason: "invalid_header",
				detail:    "Invalid token header.",
				challenge: `Bearer error="invalid_request", error_description="Invalid token header."`},
		},
		{
			name: "placeholder token of the fixtures", auth: ptr("Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.e30.sig"),
			want: want{code: codes.Unauthenticated, status: 401, reason: "invalid_token",
				detail: "Invalid token.", challenge: invalidToken},
		},
		{
			name: "wrong secret", auth: ptr("Bearer " + mustSign(t, jwt.MapClaims{"user_id": testUserID}, "another-secret")),
			want: want{code: codes.Unauthenticated, status: 401, reason: "invalid_token",
				detail: "Invalid token.", challenge: invalidToken},
		},
		{
			name: "expired", auth: ptr("Bearer " + signToken(t, jwt.MapClaims{"exp": time.Now().Add(-time.Minute).Unix()})),
			want: want{code: codes.Unauthenticated, status: 401, reason: "token_expired", detail: "Token expired.",
				challenge: `Bearer error="invalid_token", error_description="Token expired."`},
		},
		{
			name: "not delegated", auth: ptr("Bearer " + signToken(t, jwt.MapClaims{"delegated": false})),
			want: want{code: codes.Unauthenticated, status: 401, reason: "invalid_token_type", detail: "Invalid token type.",
				challenge: `Bearer error="invalid_token", error_description="Invalid token type."`},
		},
		{
			name: "unknown user", auth: ptr("Bearer " + signToken(t, jwt.MapClaims{"user_id": unknownUser})),
			want: want{code: codes.Unauthenticated, status: 401, reason: "user_not_found", userID: unknownUser,
				detail: "User not found.", challenge: `Bearer error="invalid_token", error_description="User not found."`},
		},
		{
			name: "inactive user", auth: ptr("Bearer " + signToken(t, jwt.MapClaims{"user_id": inactiveUser})),
			want: want{code: codes.Unauthenticated, status: 401, reason: "user_disabled", userID: inactiveUser,
				detail:    "User account is disabled.",
				challenge: `Bearer error="invalid_token", error_description="User account is disabled."`},
		},
		{
			name: "missing scope", auth: ptr("Bearer " + good), path: adminPath + "users?x=1",
			want: want{code: codes.PermissionDenied, status: 403, reason: "missing_scope", userID: testUserID,
				detail:    "Insufficient permissions. Required scope: admin",
				challenge: `Bearer error="insufficient_scope", scope="admin"`},
		},
	}

	for _, fixture := range fixtureNames(t) {
		for _, tc := range cases {
			for _, tr := range transports {
				t.Run(fixture+"/"+tc.name+"/"+tr.name, func(t *testing.T) {
					req := loadFixture(t, fixture)
					if tc.auth == nil {
						setRequestHeader(req, headerAuthorization, nil, false)
					} else {
						setAuthorization(req, *tc.auth)
					}
					if tc.path != "" {
						setPath(req, tc.path)
					}
					addForged(req)
					resp, err := tr.check(testCtx(t), req)
					if err != nil {
						t.Fatalf("Check returned an error (Envoy would apply failure_mode_allow): %v", err)
					}
					checkResponse(t, req, resp, tc.want)
				})
			}
		}
	}
}

func ptr[T any](v T) *T { return &v }

func mustSign(tb testing.TB, c jwt.MapClaims, secret string) string {
	tb.Helper()
	c["client_id"], c["delegated"], c["iss"] = testClientID, true, authz.DefaultIssuer
	c["exp"] = time.Now().Add(time.Hour).Unix()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(secret))
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// TestCheckRawNonUTF8 sends an authorization header whose raw bytes are not
// UTF-8 (only possible through header_map): the bytes reach the core
// unchanged, which refuses them with its own message.
func TestCheckRawNonUTF8(t *testing.T) {
	srv := New(newAuthorizer(t, newFakeDir()), Options{})
	for _, tr := range checkers(t, srv) {
		t.Run(tr.name, func(t *testing.T) {
			req := loadFixture(t, "grpc_a92_style_header_map.json")
			setRequestHeader(req, headerAuthorization, []byte("Bearer \xff\xfe\xfd"), true)
			resp, err := tr.check(testCtx(t), req)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			checkResponse(t, req, resp, want{
				code: codes.Unauthenticated, status: 401, reason: "invalid_encoding",
				detail:    "Invalid token encoding.",
				challenge: `Bearer error="invalid_request", error_description="Invalid token encoding."`,
			})
		})
	}
}

// TestCheckNoHTTP: Istio's TCP filter sends no request.http. That is a clean
// deny, not an error.
func TestCheckNoHTTP(t *testing.T) {
	srv := New(decideFunc(func(context.Context, *authz.Request) authz.Decision {
		t.Error("Decider called without request.http")
		return authz.Decision{Result: authz.Allow}
	}), Options{Realm: "gatehouse"})
	for _, tr := range checkers(t, srv) {
		for name, req := range map[string]*authv3.CheckRequest{
			"empty":         {},
			"no request":    {Attributes: &authv3.AttributeContext{}},
			"tcp attribute": {Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{}}},
		} {
			t.Run(tr.name+"/"+name, func(t *testing.T) {
				resp, err := tr.check(testCtx(t), req)
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				checkResponse(t, req, resp, want{
					code: codes.Unauthenticated, status: 401, reason: "bad_request",
					detail: "Authentication credentials were not provided.", challenge: `Bearer realm="gatehouse"`,
				})
			})
		}
	}
}

// TestCheckDirectoryUnavailable: the real core with a directory that cannot
// answer gives a 503 deny with Retry-After, over every transport.
func TestCheckDirectoryUnavailable(t *testing.T) {
	dir := &fakeDir{err: errors.Join(userstore.ErrUnavailable, errors.New("redis: connection refused"))}
	srv := New(newAuthorizer(t, dir), Options{})
	for _, tr := range checkers(t, srv) {
		t.Run(tr.name, func(t *testing.T) {
			req := loadFixture(t, "front_envoy_http1_get.json")
			setAuthorization(req, "Bearer "+signToken(t, nil))
			resp, err := tr.check(testCtx(t), req)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			checkResponse(t, req, resp, want{
				code: codes.Unavailable, status: 503, reason: "directory_unavailable", userID: testUserID,
				detail: "Service temporarily unavailable.",
			})
			if resp.GetErrorResponse() != nil {
				t.Error("error_response set: Envoy honours failure_mode_allow for it")
			}
			h := responseHeaders(t, resp.GetDeniedResponse().GetHeaders())
			if h[headerRetryAfter] != "1" {
				t.Errorf("retry-after = %q, want 1", h[headerRetryAfter])
			}
		})
	}
}

// TestCheckDecisionMapping covers decisions the core does not produce today
// but a Decider may: each must become a well-formed deny.
func TestCheckDecisionMapping(t *testing.T) {
	req := loadFixture(t, "front_envoy_http1_get.json")
	cases := []struct {
		name  string
		d     authz.Decision
		want  want
		retry string
	}{
		{
			name: "zero decision",
			d:    authz.Decision{},
			want: want{code: codes.Internal, status: 503, reason: "internal_error", detail: "Internal error."},
		},
		{
			name: "deny with a success status",
			d:    authz.Decision{Result: authz.Deny, Reason: authz.ReasonInvalidToken, Status: 200, Message: "x"},
			want: want{code: codes.Internal, status: 503, reason: "internal_error", detail: "Internal error."},
		},
		{
			name:  "unavailable without status",
			d:     authz.Decision{Result: authz.Unavailable, Reason: authz.ReasonDirectoryError, Message: "Later.", RetryAfterSeconds: 7},
			want:  want{code: codes.Unavailable, status: 503, reason: "directory_unavailable", detail: "Later."},
			retry: "7",
		},
		{
			name: "route denied 403 without challenge",
			d:    authz.Decision{Result: authz.Deny, Reason: authz.ReasonRouteDenied, Status: 403, Message: "Nope."},
			want: want{code: codes.PermissionDenied, status: 403, reason: "route_denied", detail: "Nope."},
		},
		{
			name: "invalid UTF-8 message still marshals",
			d:    authz.Decision{Result: authz.Deny, Reason: authz.ReasonInvalidToken, Status: 401, Message: "bad \xff", Challenge: authz.ChallengeInvalidToken},
			want: want{code: codes.Unauthenticated, status: 401, reason: "invalid_token", detail: "bad \ufffd",
				challenge: `Bearer error="invalid_token", error_description="bad ` + "\ufffd" + `"`},
		},
		{
			name: "allow with a header-splitting user id",
			d: authz.Decision{Result: authz.Allow, Reason: authz.ReasonAllowed, Status: 200,
				Identity: authz.Identity{UserID: "u\r\nx-auth-scope: admin", ClientID: "c"}},
			want: want{code: codes.Unauthenticated, status: 401, reason: "invalid_claims", userID: "u\r\nx-auth-scope: admin",
				detail: "Invalid token claims.", challenge: `Bearer error="invalid_token", error_description="Invalid token claims."`},
		},
		{
			name: "allow with a non-UTF-8 scope",
			d: authz.Decision{Result: authz.Allow, Reason: authz.ReasonAllowed, Status: 200,
				Identity: authz.Identity{UserID: "u", ClientID: "c", Scope: "a\xffb"}},
			want: want{code: codes.Unauthenticated, status: 401, reason: "invalid_claims", userID: "u",
				detail: "Invalid token claims.", challenge: `Bearer error="invalid_token", error_description="Invalid token claims."`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := New(decide(tc.d), Options{}).Check(context.Background(), req)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			checkResponse(t, req, resp, tc.want)
			if tc.retry != "" {
				if got := responseHeaders(t, resp.GetDeniedResponse().GetHeaders())[headerRetryAfter]; got != tc.retry {
					t.Errorf("retry-after = %q, want %q", got, tc.retry)
				}
			}
		})
	}
}

// TestCheckCustomHeaders: configured names are lower-cased once and used for
// both setting and removing.
func TestCheckCustomHeaders(t *testing.T) {
	srv := New(decide(authz.Decision{Result: authz.Allow, Reason: authz.ReasonAllowed, Status: 200,
		Identity: authz.Identity{UserID: "u1", ClientID: "c1"}}),
		Options{UserIDHeader: " X-User ", ClientIDHeader: "X-Client", ScopeHeader: "X-Scopes"})
	resp, err := srv.Check(context.Background(), loadFixture(t, "istio_sidecar_http1_post.json"))
	if err != nil {
		t.Fatal(err)
	}
	mustMarshal(t, resp)
	ok := resp.GetOkResponse()
	got := responseHeaders(t, ok.GetHeaders())
	if len(got) != 2 || got["x-user"] != "u1" || got["x-client"] != "c1" {
		t.Errorf("headers = %v", got)
	}
	if !slices.Equal(ok.GetHeadersToRemove(), []string{"x-scopes"}) {
		t.Errorf("headers_to_remove = %v, want [x-scopes]", ok.GetHeadersToRemove())
	}
}

// TestCheckPanickingDecider: a panic while deciding is a deny over every
// transport, never OK and never a gRPC error.
func TestCheckPanickingDecider(t *testing.T) {
	var logs logBuffer
	const secret = "s3cr3t-token-value"
	srv := New(decideFunc(func(_ context.Context, r *authz.Request) authz.Decision {
		panic("boom with " + r.Authorization)
	}), Options{Logger: newTestLogger(&logs)})
	for _, tr := range checkers(t, srv) {
		t.Run(tr.name, func(t *testing.T) {
			req := loadFixture(t, "front_envoy_http1_get.json")
			setAuthorization(req, "Bearer "+secret)
			resp, err := tr.check(testCtx(t), req)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			checkResponse(t, req, resp, want{code: codes.Internal, status: 503, reason: "internal_error", detail: "Internal error."})
		})
	}
	if strings.Contains(logs.String(), secret) {
		t.Errorf("panic log leaks the token: %s", logs.String())
	}
	if !strings.Contains(logs.String(), "panic recovered") {
		t.Errorf("panic not logged: %s", logs.String())
	}
}

// panickingAuthz is an Authorization service whose Check itself panics, to
// exercise UnaryRecoverer on the wire.
type panickingAuthz struct {
	authv3.UnimplementedAuthorizationServer
}

func (panickingAuthz) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	var m map[string]int
	//lint:ignore SA5000 the nil map write is the point: a runtime panic
	m["x"]++
	return nil, nil
}

func TestUnaryRecovererOverLoopback(t *testing.T) {
	addr := startServer(t, func(g *grpc.Server) { authv3.RegisterAuthorizationServer(g, panickingAuthz{}) })
	req := loadFixture(t, "front_envoy_http1_get.json")

	resp, err := grpcClient(t, addr).Check(testCtx(t), req)
	if err != nil {
		t.Fatalf("grpc-go Check: %v", err)
	}
	checkResponse(t, req, resp, want{code: codes.Internal, status: 503, reason: "internal_error", detail: "Internal error."})

	cresp, err := connectClient(t, addr).CallUnary(testCtx(t), connect.NewRequest(req))
	if err != nil {
		t.Fatalf("connect Check: %v", err)
	}
	checkResponse(t, req, cresp.Msg, want{code: codes.Internal, status: 503, reason: "internal_error", detail: "Internal error."})
}

func TestUnaryRecovererOtherMethods(t *testing.T) {
	var logs logBuffer
	ic := UnaryRecoverer(newTestLogger(&logs))
	panics := func(context.Context, any) (any, error) { panic(errors.New("secret-in-panic")) }

	resp, err := ic(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/grpc.health.v1.Health/Check"}, panics)
	if resp != nil || status.Code(err) != codes.Internal {
		t.Errorf("other method: resp %v, err %v; want nil, Internal", resp, err)
	}
	resp, err = ic(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: authv3.Authorization_Check_FullMethodName}, panics)
	cr, ok := resp.(*authv3.CheckResponse)
	if err != nil || !ok || cr.GetStatus().GetCode() == int32(codes.OK) || cr.GetDeniedResponse() == nil {
		t.Errorf("Check: resp %v, err %v; want a deny CheckResponse", resp, err)
	}
	if strings.Contains(logs.String(), "secret-in-panic") {
		t.Errorf("panic value logged: %s", logs.String())
	}
	if lines := logs.Lines(t); len(lines) != 2 || lines[0]["panic"] != "*errors.errorString" {
		t.Errorf("log lines = %v", lines)
	}
	// No panic: the handler's answer passes through untouched.
	resp, err = ic(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/x/Y"}, func(context.Context, any) (any, error) { return "fine", nil })
	if resp != "fine" || err != nil {
		t.Errorf("pass-through = %v, %v", resp, err)
	}
}

// TestCheckDeadline: the proxy's deadline reaches the Decider, and an allow
// decided after it never reaches the client as an OK. The Decider here waits
// for the deadline and then allows anyway (a Decider that ignores ctx);
// without the adapter's late-allow guard grpc-go clients do receive such an
// OK now and then, when the response beats the client's own timer.
func TestCheckDeadline(t *testing.T) {
	sawDeadline := make(chan bool, 8)
	srv := New(decideFunc(func(ctx context.Context, _ *authz.Request) authz.Decision {
		_, ok := ctx.Deadline()
		sawDeadline <- ok
		<-ctx.Done()
		return authz.Decision{Result: authz.Allow, Reason: authz.ReasonAllowed, Status: 200,
			Identity: authz.Identity{UserID: "late", ClientID: "c"}}
	}), Options{})
	for _, tr := range checkers(t, srv) {
		t.Run(tr.name, func(t *testing.T) {
			for range 5 {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
				req := loadFixture(t, "front_envoy_http1_get.json")
				resp, err := tr.check(ctx, req)
				cancel()
				if err == nil && resp.GetStatus().GetCode() == int32(codes.OK) {
					t.Fatalf("client got OK after its deadline: %v", resp)
				}
				if tr.name == "in-process" {
					if err != nil {
						t.Fatalf("Check: %v", err)
					}
					checkResponse(t, req, resp, want{code: codes.DeadlineExceeded, status: 503, reason: "deadline_exceeded",
						userID: "late", detail: "Service temporarily unavailable."})
				}
				if tr.name != "in-process" {
					// Over a socket, a deadline this short may expire before
					// the server dispatches the call (a busy machine): then
					// the Decider is rightly never called. What must hold is
					// above: no OK after the deadline.
					select {
					case ok := <-sawDeadline:
						if !ok {
							t.Error("Decider's ctx has no deadline")
						}
					case <-time.After(time.Second):
					}
					continue
				}
				select {
				case ok := <-sawDeadline:
					if !ok {
						t.Error("Decider's ctx has no deadline")
					}
				case <-time.After(5 * time.Second):
					t.Fatal("Decider never called")
				}
			}
		})
	}
}

// TestCheckLogging: one line per decision with the documented fields, at
// the decision's level, and nothing secret.
func TestCheckLogging(t *testing.T) {
	var logs logBuffer
	srv := New(newAuthorizer(t, newFakeDir()), Options{Logger: newTestLogger(&logs)})
	token := signToken(t, nil)

	req := loadFixture(t, "front_envoy_http1_get.json")
	setAuthorization(req, "Bearer "+token)
	setPath(req, "/v1/orders?access_token=leaky#frag")
	if _, err := srv.Check(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	req = loadFixture(t, "grpc_a92_style_header_map.json")
	setAuthorization(req, "Bearer garbage-token")
	if _, err := srv.Check(context.Background(), req); err != nil {
		t.Fatal(err)
	}

	out := logs.String()
	for _, secret := range []string{token, "garbage-token", "Bearer", "leaky", "frag", testScope} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains %q: %s", secret, out)
		}
	}
	lines := logs.Lines(t)
	if len(lines) != 2 {
		t.Fatalf("got %d log lines, want 2: %s", len(lines), out)
	}
	first := map[string]any{
		"level": "DEBUG", "result": "allow", "reason": "allowed", "status": float64(200),
		"method": "GET", "path": "/v1/orders", "user_id": testUserID, "client_id": testClientID,
		"request_id": "8f6e9b1c-3c2a-4a8e-9e1b-2d4f5a6b7c8d",
	}
	for k, v := range first {
		if lines[0][k] != v {
			t.Errorf("allow line %s = %v, want %v", k, lines[0][k], v)
		}
	}
	if lines[1]["result"] != "deny" || lines[1]["reason"] != "invalid_token" || lines[1]["status"] != float64(401) ||
		lines[1]["path"] != "/orders.v1.Orders/List" || lines[1]["request_id"] != "" || lines[1]["level"] != "INFO" {
		t.Errorf("deny line = %v", lines[1])
	}
}

// TestCheckLoggingAtInfo: at Info, as in production, an allow is not logged,
// a deny is at INFO with its decision id, a directory failure at WARN, and a
// flood of denies writes at most the per-second budget of lines (twice it
// if the burst spans a second).
func TestCheckLoggingAtInfo(t *testing.T) {
	var logs logBuffer
	dir := newFakeDir()
	srv := New(withID(newAuthorizer(t, dir)), Options{Logger: testkit.NewLoggerAt(&logs, slog.LevelInfo), LogLinesPerSecond: 3})
	req := loadFixture(t, "front_envoy_http1_get.json")
	setAuthorization(req, "Bearer "+signToken(t, nil))
	mustCheck(t, srv, req)
	if logs.String() != "" {
		t.Fatalf("an allow was logged at Info: %s", logs.String())
	}

	dir.err = errors.New("redis: connection refused")
	mustCheck(t, srv, req)
	setAuthorization(req, "Bearer forged")
	for range 50 {
		mustCheck(t, srv, req)
	}
	lines := logs.Lines(t)
	if len(lines) == 0 || lines[0]["level"] != "WARN" || lines[0]["status"] != float64(503) {
		t.Fatalf("first line %v, want the 503 at WARN", lines)
	}
	denies := 0
	for _, l := range lines[1:] {
		if l["msg"] != "ext_authz decision" {
			continue
		}
		denies++
		if l["level"] != "INFO" || l["reason"] != "invalid_token" || l["decision_id"] == "" {
			t.Errorf("deny line %v", l)
		}
	}
	if denies < 2 || denies > 6 {
		t.Fatalf("51 decisions with a budget of 3 lines a second wrote %d deny lines:\n%s", denies, logs.String())
	}
}

// TestCheckResponsesAreIndependent: responses do not share mutable parts,
// so a caller editing one cannot change the next.
func TestCheckResponsesAreIndependent(t *testing.T) {
	srv := New(allowAll, Options{})
	req := loadFixture(t, "front_envoy_http1_get.json")
	a, _ := srv.Check(context.Background(), req)
	b, _ := srv.Check(context.Background(), req)
	a.GetOkResponse().GetHeaders()[0].GetHeader().Value = "tampered"
	a.GetDynamicMetadata().GetFields()[metaResult] = nil
	if b.GetOkResponse().GetHeaders()[0].GetHeader().GetValue() != testUserID || metaString(b, metaResult) != "allow" {
		t.Errorf("second response changed with the first: %v", b)
	}
	if !proto.Equal(b, mustCheck(t, srv, req)) {
		t.Error("responses to the same request differ")
	}
}

func mustCheck(tb testing.TB, srv *Server, req *authv3.CheckRequest) *authv3.CheckResponse {
	tb.Helper()
	resp, err := srv.Check(context.Background(), req)
	if err != nil {
		tb.Fatal(err)
	}
	return resp
}

// TestCheckCollidingHeaderNames: a misconfiguration giving two identity
// headers one name must not make the adapter remove what it sets.
func TestCheckCollidingHeaderNames(t *testing.T) {
	srv := New(decide(authz.Decision{Result: authz.Allow, Reason: authz.ReasonAllowed, Status: 200,
		Identity: authz.Identity{UserID: "u1", ClientID: "c1"}}),
		Options{ScopeHeader: DefaultUserIDHeader})
	ok := mustCheck(t, srv, loadFixture(t, "istio_sidecar_http1_post.json")).GetOkResponse()
	if got := upstreamHeaders(nil, ok)[DefaultUserIDHeader]; !slices.Equal(got, []string{"u1"}) {
		t.Errorf("upstream %s = %v, want [u1]", DefaultUserIDHeader, got)
	}
}

// TestNewRefusesBadHeaderName: an identity header name that is not an HTTP
// token is refused when the Server is built, as forwardauth.New refuses it,
// instead of being sent to Envoy; good names are trimmed and lower-cased.
func TestNewRefusesBadHeaderName(t *testing.T) {
	for _, bad := range []string{"X Auth", "X-Auth:", "X-Ä", "x-auth\r\nx-injected"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("header name %q accepted", bad)
				}
			}()
			New(allowAll, Options{ClientIDHeader: bad})
		}()
	}
	srv := New(decide(authz.Decision{Result: authz.Allow, Reason: authz.ReasonAllowed, Status: 200,
		Identity: authz.Identity{UserID: "u1", ClientID: "c1"}}),
		Options{UserIDHeader: " X-Remote-User "})
	ok := mustCheck(t, srv, loadFixture(t, "istio_sidecar_http1_post.json")).GetOkResponse()
	if got := responseHeaders(t, ok.GetHeaders()); got["x-remote-user"] != "u1" {
		t.Errorf("headers = %v, want x-remote-user: u1", got)
	}
}
