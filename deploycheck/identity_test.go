package deploycheck

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/authz/extauthz"
	"github.com/gatehouse-authz/gatehouse/authz/forwardauth"
	"github.com/gatehouse-authz/gatehouse/authz/routes"
	"github.com/gatehouse-authz/gatehouse/internal/config"
	"github.com/gatehouse-authz/gatehouse/internal/testkit/tokentest"
	"github.com/gatehouse-authz/gatehouse/userstore"
)

// The recipes that send every request of Meet's backend to gatehouse (Istio,
// ingress-nginx, Traefik) ship this routes file: Meet's table, and public
// for everything else, so that gatehouse answers every path and removes the
// identity headers a client sent wherever it allows without a token.
const allPathsRoutesExample = "examples/routes/meet-all-paths.yaml"

// identityHeaderNames are the identity headers gatehouse sets on allow, by
// default; a backend trusts them.
var identityHeaderNames = []string{config.DefaultHeaderUserID, config.DefaultHeaderClientID, config.DefaultHeaderScope}

// forgedIdentity is what a client sends to pass for someone else.
func forgedIdentity() http.Header {
	return http.Header{
		http.CanonicalHeaderKey(config.DefaultHeaderUserID):   {"forged-user"},
		http.CanonicalHeaderKey(config.DefaultHeaderClientID): {"forged-client"},
		http.CanonicalHeaderKey(config.DefaultHeaderScope):    {"rooms:create"},
	}
}

// pathsOutsideAPI are requests to Meet's backend outside its external API:
// the root, Meet's own API and admin, a near miss of the prefix, a health
// check. None needs a token; none may carry a client's identity headers.
var pathsOutsideAPI = []string{"/", "/api/v1.0/users/me/", "/admin/login/", "/external-apix/", "/healthz", "/static/app.css"}

// Paths of Meet's external API the end-to-end tests use.
const (
	apiRoomsPath = "/external-api/v1.0/rooms/"
	apiTokenPath = "/external-api/v1.0/application/token/"
)

// checkAllPathsTable: set (a gatehouse routes configuration) makes every
// path outside /external-api/ public, whatever the method, and keeps Meet's
// rules under it, failing closed for what Meet's table does not name.
func checkAllPathsTable(t *testing.T, what string, set *routes.Set) {
	t.Helper()
	for _, p := range pathsOutsideAPI {
		for _, m := range []string{"GET", "POST", "DELETE"} {
			if r := set.Match(&authz.Request{Method: m, Path: p}); r != (authz.Rule{Public: true}) {
				t.Errorf("%s: %s %s gets %+v, want public: requests outside the external API must pass, with client identity headers removed", what, m, p, r)
			}
		}
	}
	for _, tc := range []struct {
		method, path string
		want         authz.Rule
	}{
		{"POST", apiTokenPath, authz.Rule{Public: true}},
		{"GET", apiRoomsPath, authz.Rule{Scope: "rooms:list"}},
		{"POST", apiRoomsPath, authz.Rule{Scope: "rooms:create"}},
		{"GET", "/external-api/v1.0/rooms/abc-defg-hij/", authz.Rule{Scope: "rooms:retrieve"}},
		{"DELETE", apiRoomsPath, authz.Rule{UnknownAction: true}},
		{"GET", "/external-api/v2.0/anything/", authz.Rule{UnknownAction: true}},
	} {
		if r := set.Match(&authz.Request{Method: tc.method, Path: tc.path}); r != tc.want {
			t.Errorf("%s: %s %s gets %+v, want Meet's %+v", what, tc.method, tc.path, r, tc.want)
		}
	}
}

// TestAllPathsRoutesExample: the shipped routes file says what the recipes
// rely on.
func TestAllPathsRoutesExample(t *testing.T) {
	t.Parallel()
	set, err := routes.Resolve(filepath.Join(repoRoot(t), filepath.FromSlash(allPathsRoutesExample)))
	if err != nil {
		t.Fatalf("%s: %v", allPathsRoutesExample, err)
	}
	checkAllPathsTable(t, allPathsRoutesExample, set)
	if name := set.Default().Name(); name == routes.MeetTableName || name == routes.AuthenticateTableName {
		t.Errorf("%s names its table %q, which hides a built-in table", allPathsRoutesExample, name)
	}
}

// gatehouseUnderTest is gatehouse's decision core with a routes
// configuration and one active user, served as gatehouse serves it: the
// ext_authz gRPC service and the HTTP forward-auth handler, each on a
// loopback socket.
type gatehouseUnderTest struct {
	conn *grpc.ClientConn
	// httpAddr is the forward-auth listener's 127.0.0.1:port.
	httpAddr string
	userID   string
	// token holds rooms:list (and nothing else).
	token string
}

const (
	e2eSecret = "deploycheck-e2e-secret-0123456789abcdef"
	e2eUserID = "8d3c6c1e-2f4b-4a7e-9b1d-0e2f3a4b5c6d"
	e2eClient = "e2e-app"
)

// startGatehouse serves gatehouse with GATEHOUSE_ROUTES=routesSpec (resolved
// as gatehouse resolves it) until the test ends.
func startGatehouse(t *testing.T, routesSpec string) *gatehouseUnderTest {
	t.Helper()
	set, err := routes.Resolve(routesSpec)
	if err != nil {
		t.Fatalf("routes %s: %v", routesSpec, err)
	}
	a, err := authz.New(authz.Options{
		JWT:       authz.JWTConfig{Secret: []byte(e2eSecret), Algorithm: authz.DefaultAlgorithm, Issuer: authz.DefaultIssuer},
		Directory: userstore.NewMemory([]userstore.Record{{ID: e2eUserID, Active: true}}, nil),
		Policy:    set,
	})
	if err != nil {
		t.Fatalf("authz.New: %v", err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	extauthz.New(a, extauthz.Options{}).Register(gs)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	hs := httptest.NewServer(forwardauth.New(a, forwardauth.Options{}))
	t.Cleanup(hs.Close)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &gatehouseUnderTest{
		conn: conn, httpAddr: hs.Listener.Addr().String(), userID: e2eUserID,
		token: tokentest.Sign(t, []byte(e2eSecret), e2eUserID, e2eClient, "rooms:list", nil),
	}
}

// sidecarUpstreamHeaders models what an Envoy sidecar (or gateway) under
// an Istio CUSTOM policy sends upstream: a request the policy does not match
// goes on untouched (Istio leaves ext_authz disabled for it); a matched one
// is checked with gatehouse over gRPC and, on OK, gets the answer's headers
// set (replacing client copies, append_action OVERWRITE_IF_EXISTS_OR_ADD)
// and then its headers_to_remove removed, in Envoy's order. It returns the
// gRPC status code of the check (OK for an unchecked request) and the
// upstream headers (nil on a deny).
func (g *gatehouseUnderTest) sidecarUpstreamHeaders(t *testing.T, matched bool, method, path string, client http.Header) (codes.Code, http.Header) {
	t.Helper()
	if !matched {
		return codes.OK, client.Clone()
	}
	headers := map[string]string{":method": method, ":path": path, ":authority": "meet.example.com", ":scheme": "https"}
	for k, v := range client {
		headers[strings.ToLower(k)] = strings.Join(v, ",")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := authv3.NewAuthorizationClient(g.conn).Check(ctx, &authv3.CheckRequest{
		Attributes: &authv3.AttributeContext{
			Request: &authv3.AttributeContext_Request{
				Http: &authv3.AttributeContext_HttpRequest{
					Method: method, Path: path, Host: "meet.example.com", Scheme: "https", Protocol: "HTTP/1.1", Headers: headers,
				},
			},
		},
	})
	if err != nil {
		t.Fatalf("Check %s %s: %v", method, path, err)
	}
	code := codes.Code(resp.GetStatus().GetCode())
	if code != codes.OK {
		return code, nil
	}
	ok := resp.GetOkResponse()
	up := client.Clone()
	for _, o := range ok.GetHeaders() {
		key := http.CanonicalHeaderKey(o.GetHeader().GetKey())
		switch o.GetAppendAction() {
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
			up[key] = []string{o.GetHeader().GetValue()}
		case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
			//lint:ignore SA1019 Envoy still honours the deprecated append field when it is set, so the model must too
			if o.GetAppend() != nil && !o.GetAppend().GetValue() {
				up[key] = []string{o.GetHeader().GetValue()}
			} else {
				up[key] = append(up[key], o.GetHeader().GetValue())
			}
		default:
			t.Fatalf("header %s with append_action %v: not modelled", key, o.GetAppendAction())
		}
	}
	for _, name := range ok.GetHeadersToRemove() {
		up.Del(name)
	}
	return code, up
}

// checkUpstreamIdentity: the upstream saw the identity headers of want
// (user, client, scope; "" for absent), and no client copy of them.
func checkUpstreamIdentity(t *testing.T, what string, up http.Header, want [3]string) {
	t.Helper()
	for i, name := range identityHeaderNames {
		got := up.Values(name)
		switch {
		case want[i] == "" && len(got) != 0:
			t.Errorf("%s: %s %q reached the upstream", what, name, got)
		case want[i] != "" && !slices.Equal(got, []string{want[i]}):
			t.Errorf("%s: upstream %s = %q, want exactly [%q]", what, name, got, want[i])
		}
	}
}

// readBody reads and closes a response body.
func readBody(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return b
}

// mergeHeaders returns the union of hs (later values after earlier ones).
func mergeHeaders(hs ...http.Header) http.Header {
	out := http.Header{}
	for _, h := range hs {
		for k, v := range h {
			out[http.CanonicalHeaderKey(k)] = append(out[http.CanonicalHeaderKey(k)], v...)
		}
	}
	return out
}
