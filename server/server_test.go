package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/internal/testkit"
	"github.com/gatehouse-authz/gatehouse/internal/testkit/redistest"
	"github.com/gatehouse-authz/gatehouse/userstore"
	"github.com/gatehouse-authz/gatehouse/userstore/redisstore"
)

const (
	testSecret   = "server-test-secret-0123456789abcdef"
	activeUser   = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
	inactiveUser = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
	// waitBound bounds every wait in these tests: generous, so that a slow
	// machine does not fail them, and finite, so that a bug does not hang.
	waitBound = 10 * time.Second
)

// syncBuffer collects the server's logs; safe for concurrent writers.
type syncBuffer = testkit.LogBuffer

// testConfig is a server Config and the level of the logger start gives
// the server (cmd/gatehouse's GATEHOUSE_LOG_LEVEL).
type testConfig struct {
	Config
	LogLevel slog.Level
}

func baseConfig(t *testing.T) testConfig {
	t.Helper()
	c := DefaultConfig()
	c.GRPCAddr = "127.0.0.1:0"
	c.OpsAddr = "127.0.0.1:0"
	c.HTTPAddr = "127.0.0.1:0"
	c.JWT.Secret = []byte(testSecret)
	c.ShutdownTimeout = 5 * time.Second
	c.DrainPeriod = 0 // TestDrain sets its own
	return testConfig{Config: c, LogLevel: slog.LevelDebug}
}

func usersFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "users.json")
	// The active user is written in upper case: the server normalises ids
	// of a uuid-format directory when it loads the file.
	body := `[{"id":"` + strings.ToUpper(activeUser) + `","active":true},{"id":"` + inactiveUser + `","active":false}]`
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func token(t *testing.T, userID string) string {
	t.Helper()
	resp, err := authz.IssueToken(authz.JWTConfig{
		Secret: []byte(testSecret), Algorithm: "HS256", Issuer: authz.DefaultIssuer,
	}, authz.TokenSpec{UserID: userID, ClientID: "test-app"})
	if err != nil {
		t.Fatal(err)
	}
	return resp.AccessToken
}

// running is a Server serving in the background for one test.
type running struct {
	srv    *Server
	cancel context.CancelFunc
	done   chan error
	conn   *grpc.ClientConn
	logs   *syncBuffer
}

func start(t *testing.T, cfg testConfig, opts Options) *running {
	t.Helper()
	logs := &syncBuffer{}
	// At the configured level, as cmd/gatehouse builds it (baseConfig: debug).
	logger := testkit.NewLoggerAt(logs, cfg.LogLevel)
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := New(ctx, cfg.Config, logger, opts)
	if err != nil {
		cancel()
		t.Fatalf("New: %v", err)
	}
	r := &running{srv: srv, cancel: cancel, done: make(chan error, 1), logs: logs}
	go func() { r.done <- srv.Serve(ctx) }()
	conn, err := grpc.NewClient(srv.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	r.conn = conn
	t.Cleanup(func() {
		conn.Close()
		r.stop(t)
	})
	r.waitHealth(t, "", healthpb.HealthCheckResponse_SERVING)
	return r
}

// stop cancels the server and waits for Serve to return, within waitBound.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // keep it for a second stop
		return err
	case <-time.After(waitBound):
		t.Fatalf("Serve did not return within %s of cancellation", waitBound)
		return nil
	}
}

func (r *running) waitHealth(t *testing.T, service string, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	client := healthpb.NewHealthClient(r.conn)
	deadline := time.Now().Add(waitBound)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		cancel()
		if err == nil && resp.GetStatus() == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("health of %q: got %v, %v; want %v", service, resp.GetStatus(), err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *running) check(t *testing.T, authorization string) *authv3.CheckResponse {
	t.Helper()
	return r.checkRequest(t, "GET", "/v1/rooms", authorization, nil)
}

// checkRequest sends one CheckRequest for method and path, with optional
// context extensions.
func (r *running) checkRequest(t *testing.T, method, path, authorization string, ext map[string]string) *authv3.CheckResponse {
	t.Helper()
	headers := map[string]string{":method": method, ":path": path, ":authority": "api.example.com"}
	if authorization != "" {
		headers["authorization"] = authorization
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := authv3.NewAuthorizationClient(r.conn).Check(ctx, &authv3.CheckRequest{
		Attributes: &authv3.AttributeContext{
			Request: &authv3.AttributeContext_Request{
				Http: &authv3.AttributeContext_HttpRequest{
					Method: method, Path: path, Host: "api.example.com", Headers: headers,
				},
			},
			ContextExtensions: ext,
		},
	})
	if err != nil {
		t.Fatalf("Check returned a gRPC error (Envoy would apply failure_mode_allow): %v", err)
	}
	return resp
}

func (r *running) get(t *testing.T, path string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + r.srv.OpsAddr().String() + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func header(resp *authv3.CheckResponse, name string) string {
	for _, h := range resp.GetOkResponse().GetHeaders() {
		if h.GetHeader().GetKey() == name {
			return h.GetHeader().GetValue()
		}
	}
	for _, h := range resp.GetDeniedResponse().GetHeaders() {
		if h.GetHeader().GetKey() == name {
			return h.GetHeader().GetValue()
		}
	}
	return ""
}

func detail(t *testing.T, resp *authv3.CheckResponse) string {
	t.Helper()
	var body struct{ Detail string }
	if err := json.Unmarshal([]byte(resp.GetDeniedResponse().GetBody()), &body); err != nil {
		t.Fatalf("deny body %q: %v", resp.GetDeniedResponse().GetBody(), err)
	}
	return body.Detail
}

func TestServe(t *testing.T) {
	cfg := baseConfig(t)
	cfg.UsersFile = usersFile(t)
	r := start(t, cfg, Options{})

	t.Run("health", func(t *testing.T) {
		r.waitHealth(t, "", healthpb.HealthCheckResponse_SERVING)
		r.waitHealth(t, AuthorizationService, healthpb.HealthCheckResponse_SERVING)
		_, err := healthpb.NewHealthClient(r.conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: "no.such.Service"})
		if status.Code(err) != codes.NotFound {
			t.Errorf("health of an unknown service: %v, want NotFound", err)
		}
	})
	t.Run("allow", func(t *testing.T) {
		resp := r.check(t, "Bearer "+token(t, activeUser))
		if c := codes.Code(resp.GetStatus().GetCode()); c != codes.OK || resp.GetOkResponse() == nil {
			t.Fatalf("active user: status %v, response %v; want an allow", c, resp)
		}
		if got := header(resp, "x-auth-user-id"); got != activeUser {
			t.Errorf("x-auth-user-id = %q, want %q", got, activeUser)
		}
		if got := header(resp, "x-auth-client-id"); got != "test-app" {
			t.Errorf("x-auth-client-id = %q, want test-app", got)
		}
	})
	t.Run("allow with an upper-case user id", func(t *testing.T) {
		resp := r.check(t, "Bearer "+token(t, strings.ToUpper(activeUser)))
		if codes.Code(resp.GetStatus().GetCode()) != codes.OK {
			t.Fatalf("upper-case UUID of an active user denied: %v", resp)
		}
		if got := header(resp, "x-auth-user-id"); got != activeUser {
			t.Errorf("x-auth-user-id = %q, want the canonical %q", got, activeUser)
		}
	})
	t.Run("deny", func(t *testing.T) {
		for _, c := range []struct {
			name, authorization, detail string
		}{
			{"inactive user", "Bearer " + token(t, inactiveUser), "User account is disabled."},
			{"unknown user", "Bearer " + token(t, "0e4bb2f6-7a34-4bbf-8a8e-4c1a0f0d9e11"), "User not found."},
			{"no credentials", "", "Authentication credentials were not provided."},
			{"bad token", "Bearer not.a.jwt", "Invalid token."},
		} {
			t.Run(c.name, func(t *testing.T) {
				resp := r.check(t, c.authorization)
				if codes.Code(resp.GetStatus().GetCode()) == codes.OK {
					t.Fatalf("allowed; want a deny")
				}
				if got := resp.GetDeniedResponse().GetStatus().GetCode(); got != http.StatusUnauthorized {
					t.Errorf("HTTP status %d, want 401", got)
				}
				if got := detail(t, resp); got != c.detail {
					t.Errorf("detail %q, want %q", got, c.detail)
				}
				if !strings.HasPrefix(header(resp, "www-authenticate"), "Bearer") {
					t.Errorf("www-authenticate = %q, want a Bearer challenge", header(resp, "www-authenticate"))
				}
			})
		}
	})
	t.Run("ops", func(t *testing.T) {
		if code, body := r.get(t, "/healthz"); code != http.StatusOK || body != "ok\n" {
			t.Errorf("/healthz = %d %q", code, body)
		}
		if code, body := r.get(t, "/readyz"); code != http.StatusOK || body != "ok\n" {
			t.Errorf("/readyz = %d %q", code, body)
		}
		code, body := r.get(t, "/readyz?verbose")
		if code != http.StatusOK || !strings.Contains(body, "[+]grpc serving") ||
			!strings.Contains(body, "users file") || !strings.Contains(body, "readyz check passed") {
			t.Errorf("/readyz?verbose = %d %q", code, body)
		}
		if code, _ := r.get(t, "/metrics-not-yet"); code != http.StatusNotFound {
			t.Errorf("unknown path = %d, want 404", code)
		}
		resp, err := http.Post("http://"+r.srv.OpsAddr().String()+"/readyz", "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST /readyz = %d, want 405", resp.StatusCode)
		}
	})
	t.Run("reflection off by default", func(t *testing.T) {
		_, err := listServices(t, r.conn)
		if status.Code(err) != codes.Unimplemented {
			t.Fatalf("reflection: err = %v, want Unimplemented", err)
		}
	})
	t.Run("logs hold neither secret nor token", func(t *testing.T) {
		tok := token(t, activeUser)
		r.check(t, "Bearer "+tok)
		logs := r.logs.String()
		if !strings.Contains(logs, "ext_authz decision") {
			t.Fatalf("no decision line at debug level in:\n%s", logs)
		}
		for _, secret := range []string{testSecret, tok, strings.Split(tok, ".")[1]} {
			if strings.Contains(logs, secret) {
				t.Errorf("logs contain a secret or token part %q", secret)
			}
		}
	})
}

func listServices(t *testing.T, conn *grpc.ClientConn) ([]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
	}); err != nil && !errors.Is(err, io.EOF) {
		// io.EOF means the server already ended the stream (Unimplemented
		// answers at once): its status comes from Recv below.
		return nil, err
	}
	resp, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	return names, nil
}

func TestReflectionOn(t *testing.T) {
	cfg := baseConfig(t)
	cfg.UsersFile = usersFile(t)
	cfg.GRPCReflection = true
	r := start(t, cfg, Options{})
	names, err := listServices(t, r.conn)
	if err != nil {
		t.Fatalf("reflection: %v", err)
	}
	got := strings.Join(names, ",")
	for _, want := range []string{AuthorizationService, "grpc.health.v1.Health"} {
		if !strings.Contains(got, want) {
			t.Errorf("reflection lists %s, missing %s", got, want)
		}
	}
}

// TestShutdown follows the shutdown sequence: NOT_SERVING on a Watch stream
// and /readyz 503 while the gRPC server drains (the open Watch stream keeps
// it draining), then Serve returns nil and the listeners are closed.
func TestShutdown(t *testing.T) {
	cfg := baseConfig(t)
	cfg.UsersFile = usersFile(t)
	r := start(t, cfg, Options{})

	wctx, wcancel := context.WithTimeout(context.Background(), waitBound)
	defer wcancel()
	watch, err := healthpb.NewHealthClient(r.conn).Watch(wctx, &healthpb.HealthCheckRequest{Service: AuthorizationService})
	if err != nil {
		t.Fatal(err)
	}
	if msg, err := watch.Recv(); err != nil || msg.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first Watch message: %v, %v; want SERVING", msg.GetStatus(), err)
	}

	r.cancel()
	msg, err := watch.Recv()
	if err != nil || msg.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("Watch after cancel: %v, %v; want NOT_SERVING", msg.GetStatus(), err)
	}
	if code, body := r.get(t, "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz while draining = %d %q, want 503", code, body)
	}
	if code, _ := r.get(t, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while draining = %d, want 200", code)
	}
	select {
	case err := <-r.done:
		t.Fatalf("Serve returned (%v) while a stream was still open and the timeout not reached", err)
	default:
	}

	wcancel() // the last stream ends: the graceful stop can complete
	if err := r.stop(t); err != nil {
		t.Fatalf("Serve after shutdown = %v, want nil", err)
	}
	for _, addr := range []net.Addr{r.srv.GRPCAddr(), r.srv.OpsAddr()} {
		if c, err := net.DialTimeout("tcp", addr.String(), time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after shutdown", addr)
		}
	}
	if logs := r.logs.String(); !strings.Contains(logs, `"msg":"shutting down"`) || !strings.Contains(logs, `"msg":"stopped"`) {
		t.Errorf("shutdown not logged:\n%s", logs)
	}
}

// TestShutdownTimeout: a stream that never ends cannot hold the process past
// the shutdown timeout.
func TestShutdownTimeout(t *testing.T) {
	cfg := baseConfig(t)
	cfg.UsersFile = usersFile(t)
	cfg.ShutdownTimeout = 200 * time.Millisecond
	r := start(t, cfg, Options{})

	wctx, wcancel := context.WithTimeout(context.Background(), waitBound)
	defer wcancel()
	watch, err := healthpb.NewHealthClient(r.conn).Watch(wctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Recv(); err != nil {
		t.Fatal(err)
	}
	if err := r.stop(t); err != nil {
		t.Fatalf("Serve = %v, want nil", err)
	}
	if !strings.Contains(r.logs.String(), "graceful stop timed out") {
		t.Errorf("the forced stop was not logged")
	}
	// The stream was cut: it ends with an error rather than hanging.
	for {
		if _, err := watch.Recv(); err != nil {
			break
		}
	}
}

func TestNewRefuses(t *testing.T) {
	t.Run("invalid config", func(t *testing.T) {
		cfg := baseConfig(t)
		cfg.UsersFile = usersFile(t)
		cfg.JWT.Secret = nil
		if _, err := New(context.Background(), cfg.Config, nil, Options{}); err == nil || !strings.Contains(err.Error(), "JWT secret is empty") {
			t.Fatalf("New without a secret = %v", err)
		}
	})
	t.Run("malformed users file", func(t *testing.T) {
		cfg := baseConfig(t)
		cfg.UsersFile = filepath.Join(t.TempDir(), "users.json")
		if err := os.WriteFile(cfg.UsersFile, []byte(`[{"id":"not-a-uuid","active":true}]`), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := New(context.Background(), cfg.Config, nil, Options{})
		if err == nil || !strings.Contains(err.Error(), cfg.UsersFile) {
			t.Fatalf("New with a non-UUID id in a uuid directory = %v, want an error naming the file", err)
		}
	})
	t.Run("address in use", func(t *testing.T) {
		busy, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer busy.Close()
		cfg := baseConfig(t)
		cfg.UsersFile = usersFile(t)
		cfg.OpsAddr = busy.Addr().String()
		_, err = New(context.Background(), cfg.Config, nil, Options{})
		if err == nil || !strings.Contains(err.Error(), "ops listener") {
			t.Fatalf("New on a busy ops port = %v", err)
		}
	})
}

// TestRoutes: GATEHOUSE_ROUTES reaches the decision, and a bad routes file
// stops start-up.
func TestRoutes(t *testing.T) {
	cfg := baseConfig(t)
	cfg.UsersFile = usersFile(t)
	cfg.Routes = "meet"
	r := start(t, cfg, Options{})
	const rooms = "/external-api/v1.0/rooms/"
	scoped, err := authz.IssueToken(authz.JWTConfig{Secret: []byte(testSecret), Algorithm: "HS256", Issuer: authz.DefaultIssuer},
		authz.TokenSpec{UserID: activeUser, ClientID: "test-app", Scope: "rooms:list"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, method, path, auth string
		ext                      map[string]string
		code                     codes.Code
		detail                   string
	}{
		{"public token endpoint", "POST", "/external-api/v1.0/application/token/", "", nil, codes.OK, ""},
		{"list with scope", "GET", rooms + "?page=2", "Bearer " + scoped.AccessToken, nil, codes.OK, ""},
		{"create without scope", "POST", rooms, "Bearer " + scoped.AccessToken, nil, codes.PermissionDenied,
			"Insufficient permissions. Required scope: rooms:create"},
		{"unknown action", "DELETE", rooms, "Bearer " + scoped.AccessToken, nil, codes.PermissionDenied,
			"Insufficient permissions. Unknown action."},
		{"unknown action needs credentials first", "DELETE", rooms, "", nil, codes.Unauthenticated,
			"Authentication credentials were not provided."},
		{"per-route scope from Envoy", "GET", "/elsewhere", "Bearer " + scoped.AccessToken,
			map[string]string{"gatehouse.scope": "reports:read"}, codes.PermissionDenied,
			"Insufficient permissions. Required scope: reports:read"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := r.checkRequest(t, tc.method, tc.path, tc.auth, tc.ext)
			if got := codes.Code(resp.GetStatus().GetCode()); got != tc.code {
				t.Fatalf("status %v, want %v (%v)", got, tc.code, resp)
			}
			if tc.code == codes.OK {
				if resp.GetOkResponse() == nil {
					t.Fatalf("allow without ok_response: %v", resp)
				}
				return
			}
			if got := detail(t, resp); got != tc.detail {
				t.Fatalf("detail %q, want %q", got, tc.detail)
			}
		})
	}

	t.Run("bad routes file", func(t *testing.T) {
		cfg := baseConfig(t)
		cfg.UsersFile = usersFile(t)
		cfg.Routes = filepath.Join(t.TempDir(), "routes.yaml")
		if err := os.WriteFile(cfg.Routes, []byte("routes:\n  - prefix: /a/\n    scope: [x]\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := New(context.Background(), cfg.Config, nil, Options{})
		if err == nil || !strings.Contains(err.Error(), "routes.yaml:3: scope: must be a string") {
			t.Fatalf("New with a bad routes file = %v, want an error naming file, line and key", err)
		}
	})
}

// panicDirectory fails in the worst way.
type panicDirectory struct{}

func (panicDirectory) Lookup(context.Context, userstore.Kind, string) (userstore.Status, error) {
	panic("directory exploded")
}

func TestPanicIsADeny(t *testing.T) {
	cfg := baseConfig(t)
	r := start(t, cfg, Options{Directory: panicDirectory{}, DirectoryName: "panicking"})
	resp := r.check(t, "Bearer "+token(t, activeUser))
	if codes.Code(resp.GetStatus().GetCode()) == codes.OK {
		t.Fatal("a panicking directory allowed the request")
	}
	if got := resp.GetDeniedResponse().GetStatus().GetCode(); got != http.StatusServiceUnavailable {
		t.Errorf("HTTP status %d, want 503", got)
	}
	// The server survived.
	r.waitHealth(t, "", healthpb.HealthCheckResponse_SERVING)
}

func redisConfig(t *testing.T, url string) testConfig {
	cfg := baseConfig(t)
	cfg.Redis = &redisstore.ClientConfig{URL: url}
	cfg.CacheTTL = time.Hour // only invalidation can explain a change
	cfg.RedisTimeout = 500 * time.Millisecond
	return cfg
}

func hset(t *testing.T, rs *redistest.Server, id, active string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rs.Client().HSet(ctx, "gatehouse:user:"+id, "active", active).Err(); err != nil {
		t.Fatal(err)
	}
}

// eventually polls cond until it holds, within waitBound.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitBound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, waitBound)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRedisDirectoryAndInvalidation(t *testing.T) {
	rs := redistest.Start(t)
	hset(t, rs, activeUser, "1")
	r := start(t, redisConfig(t, rs.URL()), Options{})

	resp := r.check(t, "Bearer "+token(t, activeUser))
	if codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		t.Fatalf("active user in Redis denied: %v", resp)
	}
	if resp := r.check(t, "Bearer "+token(t, inactiveUser)); detail(t, resp) != "User not found." {
		t.Fatalf("user missing from Redis: %q", detail(t, resp))
	}

	// Disable the user and publish, as any writer would.
	hset(t, rs, activeUser, "0")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tok := "Bearer " + token(t, activeUser)
	eventually(t, "the invalidated user is denied", func() bool {
		// Publish until the subscriber, which starts with the server, hears it.
		if err := rs.Client().Publish(ctx, "gatehouse:invalidate", "user:"+strings.ToUpper(activeUser)).Err(); err != nil {
			t.Fatal(err)
		}
		resp := r.check(t, tok)
		return codes.Code(resp.GetStatus().GetCode()) != codes.OK && detail(t, resp) == "User account is disabled."
	})
}

// TestRedisDownAtStart: a Redis that is down is reported, decisions fail
// closed with 503, and the server recovers when Redis comes back.
func TestRedisDownAtStart(t *testing.T) {
	rs := redistest.Start(t)
	rs.Kill()
	r := start(t, redisConfig(t, rs.URL()), Options{})

	if logs := r.logs.String(); !strings.Contains(logs, "Redis is unreachable at start") {
		t.Errorf("no start-up warning about Redis in:\n%s", logs)
	}
	code, body := r.get(t, "/readyz?verbose")
	if code != http.StatusOK || !strings.Contains(body, "[-]directory redis") {
		t.Errorf("/readyz?verbose with Redis down = %d %q; want 200 and the directory reported down", code, body)
	}

	tok := "Bearer " + token(t, activeUser)
	resp := r.check(t, tok)
	if codes.Code(resp.GetStatus().GetCode()) == codes.OK {
		t.Fatal("allowed while Redis is down")
	}
	if got := resp.GetDeniedResponse().GetStatus().GetCode(); got != http.StatusServiceUnavailable {
		t.Errorf("HTTP status %d with Redis down, want 503", got)
	}
	if header(resp, "retry-after") == "" {
		t.Error("503 without Retry-After")
	}

	rs.Restart()
	hset(t, rs, activeUser, "1")
	eventually(t, "allowed once Redis is back", func() bool {
		return codes.Code(r.check(t, tok).GetStatus().GetCode()) == codes.OK
	})
}

func TestRedisPasswordNotLogged(t *testing.T) {
	const password = "redis-password-never-logged"
	// Nothing listens on this port once the listener is closed.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	r := start(t, redisConfig(t, "redis://app:"+password+"@"+addr+"/0"), Options{})
	resp := r.check(t, "Bearer "+token(t, activeUser))
	if codes.Code(resp.GetStatus().GetCode()) == codes.OK {
		t.Fatal("allowed without a directory")
	}
	_, body := r.get(t, "/readyz?verbose")
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{"logs": r.logs.String(), "readyz": body} {
		if strings.Contains(out, password) {
			t.Errorf("%s contain the Redis password:\n%s", name, out)
		}
	}
	if !strings.Contains(r.logs.String(), "REDACTED") {
		t.Errorf("the redacted Redis URL is not logged:\n%s", r.logs.String())
	}
}

func TestParseInvalidation(t *testing.T) {
	for _, c := range []struct {
		in   string
		kind userstore.Kind
		id   string
		ok   bool
	}{
		{"user:abc", userstore.User, "abc", true},
		{"app:meet", userstore.App, "meet", true},
		{"user:a:b", userstore.User, "a:b", true},
		{"user:", 0, "", false},
		{"room:x", 0, "", false},
		{"nocolon", 0, "", false},
		{"", 0, "", false},
	} {
		kind, id, ok := userstore.ParseChange(c.in)
		if kind != c.kind || id != c.id || ok != c.ok {
			t.Errorf("ParseChange(%q) = %v %q %v, want %v %q %v", c.in, kind, id, ok, c.kind, c.id, c.ok)
		}
	}
}

func TestAuthorizationServiceName(t *testing.T) {
	if got := authv3.Authorization_ServiceDesc.ServiceName; got != AuthorizationService {
		t.Fatalf("generated service name %q, AuthorizationService %q", got, AuthorizationService)
	}
}

// TestServeTwice: Serve is single-use.
func TestServeTwice(t *testing.T) {
	cfg := baseConfig(t)
	cfg.UsersFile = usersFile(t)
	r := start(t, cfg, Options{})
	if err := r.srv.Serve(context.Background()); err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("second Serve = %v, want an error", err)
	}
}

// TestTokenCacheSizeSetting: GATEHOUSE_TOKEN_CACHE_SIZE=0 turns the
// verified-token cache off, and decisions are the same either way.
func TestTokenCacheSizeSetting(t *testing.T) {
	if zeroMeansNone(0) >= 0 || zeroMeansNone(-5) >= 0 || zeroMeansNone(7) != 7 {
		t.Fatalf("zeroMeansNone maps 0/-5/7 to %d/%d/%d, want none/none/7", zeroMeansNone(0), zeroMeansNone(-5), zeroMeansNone(7))
	}
	cfg := baseConfig(t)
	cfg.UsersFile = usersFile(t)
	cfg.TokenCacheSize = 0
	r := start(t, cfg, Options{})
	tok := "Bearer " + token(t, activeUser)
	for range 2 {
		if resp := r.check(t, tok); codes.Code(resp.GetStatus().GetCode()) != codes.OK {
			t.Fatalf("without a token cache: %v", resp)
		}
	}
}
