package extauthz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/authz/internal/adapter"
	"github.com/gatehouse-authz/gatehouse/internal/testkit"
	"github.com/gatehouse-authz/gatehouse/internal/testkit/tokentest"
	"github.com/gatehouse-authz/gatehouse/userstore"
)

// fixturesDir holds realistic CheckRequest shapes as Envoy and Istio send
// them (front Envoy, Istio sidecar, header_map form), kept in the repository
// so that a checkout alone runs every test.
const fixturesDir = "testdata/checkrequests"

// Test identities and secrets.
const (
	testSecret   = "test-secret-of-at-least-32-bytes!!"
	testUserID   = "6f1c2f9e-3b7a-4c52-9d0e-1a2b3c4d5e6f"
	testClientID = "app-1"
	testScope    = "rooms:read rooms:write"
	inactiveUser = "0b5a0a59-1d0e-4b39-8e2d-7c6f5e4d3c2b"
	unknownUser  = "c3d2e1f0-0000-4000-8000-000000000000"

	// publicPath is Meet's token endpoint, public in testPolicy.
	publicPath = "/external-api/v1.0/application/token/"
	// adminPath needs a scope no test token has.
	adminPath = "/admin/"
)

// fakeDir is the smallest userstore.Directory: fixed answers, or err for
// every lookup when set.
type fakeDir struct {
	users map[string]userstore.Status
	err   error
}

func (d *fakeDir) Lookup(_ context.Context, kind userstore.Kind, id string) (userstore.Status, error) {
	if d.err != nil {
		return userstore.NotFound, d.err
	}
	if kind != userstore.User {
		return userstore.NotFound, nil
	}
	return d.users[id], nil
}

func newFakeDir() *fakeDir {
	return &fakeDir{users: map[string]userstore.Status{
		testUserID:   userstore.Active,
		inactiveUser: userstore.Inactive,
	}}
}

// testPolicy: Meet's token endpoint is public, /admin/ needs a scope the
// test tokens lack, everything else needs authentication only.
type testPolicy struct{}

func (testPolicy) Match(r *authz.Request) authz.Rule {
	p := adapter.PathWithoutQuery(r.Path)
	switch {
	case p == publicPath:
		return authz.Rule{Public: true}
	case strings.HasPrefix(p, adminPath):
		return authz.Rule{Scope: "admin"}
	default:
		return authz.Rule{}
	}
}

// newAuthorizer returns the real decision core over dir.
func newAuthorizer(tb testing.TB, dir userstore.Directory) *authz.Authorizer {
	tb.Helper()
	a, err := authz.New(authz.Options{
		JWT: authz.JWTConfig{
			Secret:    []byte(testSecret),
			Algorithm: authz.DefaultAlgorithm,
			Issuer:    authz.DefaultIssuer,
		},
		Directory: dir,
		Policy:    testPolicy{},
	})
	if err != nil {
		tb.Fatalf("authz.New: %v", err)
	}
	return a
}

// signToken signs claims with the test secret; nil fields of the defaults
// are deleted, others override.
func signToken(tb testing.TB, override jwt.MapClaims) string {
	tb.Helper()
	return tokentest.Sign(tb, []byte(testSecret), testUserID, testClientID, testScope, override)
}

// loadFixture reads one CheckRequest fixture.
func loadFixture(tb testing.TB, name string) *authv3.CheckRequest {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(fixturesDir, name))
	if err != nil {
		tb.Fatalf("read fixture: %v", err)
	}
	req := new(authv3.CheckRequest)
	if err := protojson.Unmarshal(b, req); err != nil {
		tb.Fatalf("unmarshal fixture %s: %v", name, err)
	}
	return req
}

// fixtureNames lists every fixture; the tests fail when there are none so a
// moved directory cannot turn them into no-ops.
func fixtureNames(tb testing.TB) []string {
	tb.Helper()
	m, err := filepath.Glob(filepath.Join(fixturesDir, "*.json"))
	if err != nil || len(m) == 0 {
		tb.Fatalf("no fixtures in %s (err %v)", fixturesDir, err)
	}
	for i := range m {
		m[i] = filepath.Base(m[i])
	}
	return m
}

// setRequestHeader replaces (or, with ok false, deletes) a request header wherever
// the fixture carries headers: the headers map, or header_map as raw bytes.
// name is lower case.
func setRequestHeader(req *authv3.CheckRequest, name string, value []byte, ok bool) {
	http := req.GetAttributes().GetRequest().GetHttp()
	if hm := http.GetHeaderMap(); hm != nil {
		kept := hm.Headers[:0]
		for _, h := range hm.Headers {
			if !strings.EqualFold(h.GetKey(), name) {
				kept = append(kept, h)
			}
		}
		hm.Headers = kept
		if ok {
			hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: name, RawValue: value})
		}
		return
	}
	if ok {
		if http.Headers == nil {
			http.Headers = map[string]string{}
		}
		http.Headers[name] = string(value)
		return
	}
	delete(http.Headers, name)
}

func setAuthorization(req *authv3.CheckRequest, value string) {
	setRequestHeader(req, headerAuthorization, []byte(value), true)
}

func setPath(req *authv3.CheckRequest, path string) {
	http := req.GetAttributes().GetRequest().GetHttp()
	http.Path = path
	if _, ok := http.GetHeaders()[pseudoPath]; ok {
		http.Headers[pseudoPath] = path
	}
}

// decideFunc adapts a function to Decider.
type decideFunc func(ctx context.Context, req *authz.Request) authz.Decision

func (f decideFunc) Decide(ctx context.Context, req *authz.Request) authz.Decision {
	return f(ctx, req)
}

// allowAll allows every request as the test identity.
var allowAll = decideFunc(func(context.Context, *authz.Request) authz.Decision {
	return authz.Decision{
		Result:   authz.Allow,
		Reason:   authz.ReasonAllowed,
		Status:   http.StatusOK,
		Identity: authz.Identity{UserID: testUserID, ClientID: testClientID, Scope: testScope},
	}
})

// decide returns d for every request.
func decide(d authz.Decision) Decider {
	return decideFunc(func(context.Context, *authz.Request) authz.Decision { return d })
}

// checker is one way of sending a CheckRequest: in process, grpc-go or
// connect-go over loopback, or grpc-go to the server NewGRPCServer makes
// (checkwire decoding, hand-encoded answers), as gatehouse serves.
type checker struct {
	name  string
	check func(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error)
}

// checkers returns the four transports for srv. The loopback servers run
// with UnaryRecoverer, as in production.
func checkers(tb testing.TB, srv *Server) []checker {
	tb.Helper()
	addr := startServer(tb, srv.Register)
	gc := grpcClient(tb, addr)
	cc := connectClient(tb, addr)
	wc := grpcClient(tb, serveGRPC(tb, srv.NewGRPCServer(grpc.UnaryInterceptor(UnaryRecoverer(nil)))))
	return []checker{
		{"in-process", srv.Check},
		{"grpc-go", func(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
			return gc.Check(ctx, req)
		}},
		{"connect-go", func(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
			resp, err := cc.CallUnary(ctx, connect.NewRequest(req))
			if err != nil {
				return nil, err
			}
			return resp.Msg, nil
		}},
		{"grpc-go/checkwire", func(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
			return wc.Check(ctx, req)
		}},
	}
}

// startServer serves on a loopback port until the test ends and returns the
// address.
func startServer(tb testing.TB, register func(*grpc.Server)) string {
	tb.Helper()
	g := grpc.NewServer(grpc.UnaryInterceptor(UnaryRecoverer(nil)))
	register(g)
	return serveGRPC(tb, g)
}

// serveGRPC serves g on a loopback port until the test ends and returns the
// address.
func serveGRPC(tb testing.TB, g *grpc.Server) string {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Serve(lis) }()
	tb.Cleanup(func() {
		g.Stop()
		if err := <-done; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			tb.Errorf("serve: %v", err)
		}
	})
	return lis.Addr().String()
}

func grpcClient(tb testing.TB, addr string) authv3.AuthorizationClient {
	tb.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatalf("grpc client: %v", err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	return authv3.NewAuthorizationClient(conn)
}

// connectClient is an independent gRPC implementation (connect-go speaking
// the gRPC protocol) over cleartext HTTP/2 (h2c) from net/http.
func connectClient(tb testing.TB, addr string) *connect.Client[authv3.CheckRequest, authv3.CheckResponse] {
	tb.Helper()
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &protocols}
	tb.Cleanup(tr.CloseIdleConnections)
	return connect.NewClient[authv3.CheckRequest, authv3.CheckResponse](
		&http.Client{Transport: tr},
		"http://"+addr+authv3.Authorization_Check_FullMethodName,
		connect.WithGRPC(),
	)
}

// testCtx bounds every RPC of a test.
func testCtx(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// mustMarshal checks that a response can go on the wire: a marshal failure
// would be a gRPC error, which failure_mode_allow turns into an allow.
func mustMarshal(tb testing.TB, resp *authv3.CheckResponse) {
	tb.Helper()
	if _, err := proto.Marshal(resp); err != nil {
		tb.Fatalf("response does not marshal: %v", err)
	}
}

// hasField reports whether m sets the field named name. It reads the field
// by reflection so that checking that a deprecated field is unset needs no
// deprecated accessor; a misspelt name panics rather than passing.
func hasField(m proto.Message, name protoreflect.Name) bool {
	r := m.ProtoReflect()
	fd := r.Descriptor().Fields().ByName(name)
	if fd == nil {
		panic(fmt.Sprintf("%s has no field %s", r.Descriptor().FullName(), name))
	}
	return r.Has(fd)
}

// responseHeaders flattens HeaderValueOptions, failing on anything but
// OVERWRITE_IF_EXISTS_OR_ADD without the deprecated append field.
func responseHeaders(tb testing.TB, opts []*corev3.HeaderValueOption) map[string]string {
	tb.Helper()
	m := make(map[string]string, len(opts))
	for _, o := range opts {
		if hasField(o, "append") {
			tb.Errorf("header %q sets the deprecated append field", o.GetHeader().GetKey())
		}
		if o.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
			tb.Errorf("header %q append_action = %v, want OVERWRITE_IF_EXISTS_OR_ADD", o.GetHeader().GetKey(), o.GetAppendAction())
		}
		k := o.GetHeader().GetKey()
		if _, dup := m[k]; dup {
			tb.Errorf("header %q sent twice", k)
		}
		m[k] = o.GetHeader().GetValue()
	}
	return m
}

// upstreamHeaders applies an allow to the request headers the way Envoy's
// ext_authz filter does (Filter::onComplete, CheckStatus::OK): header
// mutations first (OVERWRITE_IF_EXISTS_OR_ADD replaces every copy), then
// headers_to_remove. It returns what the backend would see.
func upstreamHeaders(req map[string][]string, ok *authv3.OkHttpResponse) map[string][]string {
	out := make(map[string][]string, len(req))
	for k, v := range req {
		out[strings.ToLower(k)] = append([]string(nil), v...)
	}
	for _, o := range ok.GetHeaders() {
		out[strings.ToLower(o.GetHeader().GetKey())] = []string{o.GetHeader().GetValue()}
	}
	for _, k := range ok.GetHeadersToRemove() {
		delete(out, strings.ToLower(k))
	}
	return out
}

// metaString returns a dynamic metadata string, or "" when absent.
func metaString(resp *authv3.CheckResponse, key string) string {
	return resp.GetDynamicMetadata().GetFields()[key].GetStringValue()
}

// logBuffer collects JSON log lines; safe for concurrent writers.
type logBuffer = testkit.LogBuffer

func newTestLogger(l *logBuffer) *slog.Logger { return testkit.NewLogger(l) }
