package extauthz

import (
	"context"
	"net/http"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/authz/routes"
)

// routesAuthorizer is the real decision core with a routes policy.
func routesAuthorizer(tb testing.TB, policy authz.Policy) *authz.Authorizer {
	tb.Helper()
	a, err := authz.New(authz.Options{
		JWT: authz.JWTConfig{
			Secret:    []byte(testSecret),
			Algorithm: authz.DefaultAlgorithm,
			Issuer:    authz.DefaultIssuer,
		},
		Directory: newFakeDir(),
		Policy:    policy,
	})
	if err != nil {
		tb.Fatalf("authz.New: %v", err)
	}
	return a
}

// checkHTTP is a CheckRequest as Envoy sends it for method and path.
func checkHTTP(method, path, auth string) *authv3.CheckRequest {
	h := map[string]string{":method": method, ":path": path, ":authority": "meet.example.com"}
	if auth != "" {
		h[headerAuthorization] = auth
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: method, Path: path, Host: "meet.example.com", Headers: h},
	}}}
}

// TestCheckPaths sends the hardening issue's requests over gRPC Check (every
// transport) with GATEHOUSE_ROUTES=meet, and a routes file limiting a deny
// to DELETE: each was allowed before paths were decoded, unknown paths under
// /external-api/ refused and methods upper-cased.
func TestCheckPaths(t *testing.T) {
	file, err := routes.Parse("f.yaml", "f", []byte("routes:\n  - prefix: /admin/\n    methods: [DELETE]\n    deny: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	meet := New(routesAuthorizer(t, routes.NewSet(routes.Meet())), Options{})
	withFile := New(routesAuthorizer(t, routes.NewSet(file)), Options{})

	noScope := "Bearer " + signToken(t, jwt.MapClaims{"scope": nil})
	listOnly := "Bearer " + signToken(t, jwt.MapClaims{"scope": "rooms:list"})
	all := "Bearer " + signToken(t, jwt.MapClaims{"scope": "rooms:list rooms:retrieve rooms:create"})
	const (
		insufficient = "Insufficient permissions."
		badPath      = "Invalid request path."
		unknown      = "Insufficient permissions. Unknown action."
	)
	scopeChallenge := func(s string) string { return `Bearer error="insufficient_scope", scope="` + s + `"` }
	for _, tc := range []struct {
		name               string
		srv                *Server
		method, path, auth string
		detail, challenge  string
		reason             authz.Reason
		withUser           bool
	}{
		{"encoded rooms list without scope", meet, "GET", "/external-api/v1.0/room%73/", noScope,
			insufficient, scopeChallenge("rooms:list"), authz.ReasonNoScope, true},
		{"encoded slash after rooms", meet, "GET", "/external-api/v1.0/rooms%2F", noScope,
			badPath, "", authz.ReasonBadRequest, false},
		{"encoded create with the list scope only", meet, "POST", "/external-api/v1.0/room%73/", listOnly,
			"Insufficient permissions. Required scope: rooms:create", scopeChallenge("rooms:create"), authz.ReasonMissingScope, true},
		{"encoded slash in a room id", meet, "GET", "/external-api/v1.0/rooms/abc%2F", all,
			badPath, "", authz.ReasonBadRequest, false},
		{"fragment", meet, "GET", "/external-api/v1.0/rooms/#frag", noScope, badPath, "", authz.ReasonBadRequest, false},
		{"NUL", meet, "GET", "/external-api/v1.0/rooms/%00/", all, badPath, "", authz.ReasonBadRequest, false},
		{"rooms.json without scope", meet, "GET", "/external-api/v1.0/rooms.json", noScope,
			insufficient, scopeChallenge("rooms:list"), authz.ReasonNoScope, true},
		{"PUT rooms.json", meet, "PUT", "/external-api/v1.0/rooms.json", all, unknown, "", authz.ReasonUnknownAction, true},
		{"unnamed path under the prefix", meet, "GET", "/external-api/v1.0/other/", noScope, unknown, "", authz.ReasonUnknownAction, true},
		{"lower-case DELETE on a DELETE-only deny", withFile, "delete", "/admin/x", all, insufficient, "", authz.ReasonRouteDenied, true},
		{"method that is not a token", withFile, "DEL ETE", "/admin/x", all, "Invalid request method.", "", authz.ReasonBadRequest, false},
	} {
		for _, c := range checkers(t, tc.srv) {
			t.Run(c.name+"/"+tc.name, func(t *testing.T) {
				req := checkHTTP(tc.method, tc.path, tc.auth)
				resp, err := c.check(testCtx(t), req)
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				userID := ""
				if tc.withUser {
					userID = testUserID
				}
				checkResponse(t, req, resp, want{
					code: codes.PermissionDenied, status: http.StatusForbidden, detail: tc.detail,
					challenge: tc.challenge, reason: string(tc.reason), userID: userID,
				})
			})
		}
	}

	// "include: meet" with "default: public" (every path of Meet sent to
	// gatehouse, only /external-api/ guarded): outside the prefix the allow
	// carries no identity and strips the client's identity headers.
	meetPublic, err := routes.Parse("meet-public.yaml", "meet-public", []byte("include: meet\ndefault: public\n"))
	if err != nil {
		t.Fatal(err)
	}
	open := New(routesAuthorizer(t, routes.NewSet(meetPublic)), Options{})
	for _, c := range checkers(t, open) {
		t.Run(c.name+"/public outside the prefix strips identity", func(t *testing.T) {
			req := checkHTTP("GET", "/api/v1.0/rooms/", all)
			resp, err := c.check(testCtx(t), req)
			if err != nil {
				t.Fatal(err)
			}
			checkResponse(t, req, resp, want{allow: true, reason: "public", upstream: identity("", "", "")})
			req = checkHTTP("GET", "/external-api/v1.0/rooms.json", noScope)
			if resp, err = c.check(testCtx(t), req); err != nil {
				t.Fatal(err)
			}
			checkResponse(t, req, resp, want{code: codes.PermissionDenied, status: http.StatusForbidden,
				detail: insufficient, challenge: scopeChallenge("rooms:list"), reason: string(authz.ReasonNoScope), userID: testUserID})
		})
	}

	// The encoded spelling of a route is that route: allowed with its scope.
	resp, err := meet.Check(context.Background(), checkHTTP("GET", "/external-api/v1.0/room%73/?page=2", listOnly))
	if err != nil || resp.GetStatus().GetCode() != int32(codes.OK) {
		t.Fatalf("encoded list with its scope: %v %v", resp.GetStatus(), err)
	}
}
