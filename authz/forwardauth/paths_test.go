package forwardauth

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/authz/routes"
	"github.com/gatehouse-authz/gatehouse/internal/testkit/proxytest"
)

// pathCase is one request that must not reach the backend through any
// channel: what the backend routes it to needs what the token lacks, or it
// cannot be decided.
type pathCase struct {
	name   string
	method string
	target string
	// auth is the Authorization header ("" for none).
	auth func(t *testing.T) string
	// status and detail of gatehouse's answer.
	status int
	detail string
	// meetOnly: run with GATEHOUSE_ROUTES=meet (else testRoutes).
	meetOnly bool
	// caddyDetail, when set, is the detail through Caddy, whose {uri}
	// re-encodes a "#" as %23: gatehouse and the upstream then see a path
	// holding "#", which the table does not name.
	caddyDetail string
}

func noScopeToken(t *testing.T) string {
	return "Bearer " + signToken(t, jwt.MapClaims{"scope": nil})
}

func listOnlyToken(t *testing.T) string {
	return "Bearer " + signToken(t, jwt.MapClaims{"scope": "rooms:list"})
}

func fullToken(t *testing.T) string { return "Bearer " + signToken(t, nil) }

// pathCases are the hardening issue's examples: each was allowed (and
// reached the backend) before paths were decoded, unknown paths under
// /external-api/ refused and methods upper-cased.
func pathCases() []pathCase {
	const (
		insufficient = "Insufficient permissions."
		badPath      = "Invalid request path."
		unknown      = "Insufficient permissions. Unknown action."
	)
	return []pathCase{
		// 1. Percent-encoded paths are the routes the backend decodes them to.
		{"encoded rooms list without scope", "GET", "/external-api/v1.0/room%73/", noScopeToken, 403, insufficient, true, ""},
		{"encoded rooms list, query kept apart", "GET", "/external-api/v1.0/room%73/?page=2", noScopeToken, 403, insufficient, true, ""},
		{"encoded slash after rooms", "GET", "/external-api/v1.0/rooms%2F", noScopeToken, 403, badPath, true, ""},
		{"encoded create with the list scope only", "POST", "/external-api/v1.0/room%73/", listOnlyToken, 403,
			"Insufficient permissions. Required scope: rooms:create", true, ""},
		{"encoded slash in a room id", "GET", "/external-api/v1.0/rooms/abc%2F", noScopeToken, 403, badPath, true, ""},
		{"fragment in the target", "GET", "/external-api/v1.0/rooms/#frag", noScopeToken, 403, badPath, true, unknown},
		{"encoded dot segments", "POST", "/external-api/v1.0/rooms/%2e%2E/application/token/", noScopeToken, 403, badPath, true, ""},
		// 2. Paths under /external-api/ the table does not name fail closed;
		// DRF's format suffixes are their actions.
		{"rooms.json without scope", "GET", "/external-api/v1.0/rooms.json", noScopeToken, 403, insufficient, true, ""},
		{"PUT rooms.json", "PUT", "/external-api/v1.0/rooms.json", fullToken, 403, unknown, true, ""},
		{"rooms/{id}.json without scope", "GET", "/external-api/v1.0/rooms/abc.json", noScopeToken, 403, insufficient, true, ""},
		{"unnamed path", "GET", "/external-api/v1.0/other/", noScopeToken, 403, unknown, true, ""},
		// 3. A rule limited to DELETE holds for "delete".
		{"lower-case DELETE on a DELETE-only deny", "delete", "/external-api/admin/x", fullToken, 403, insufficient, false, ""},
	}
}

// rawResponse sends a raw HTTP/1.1 request (targets and methods exactly as
// written, which net/http's client would normalise or refuse) and returns
// the status, headers and body.
func rawResponse(t *testing.T, addr, request string) (*http.Response, []byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, body
}

// rawRequest writes method target with headers as one HTTP/1.1 request to
// meet.example.com.
func rawRequest(method, target string, h http.Header) string {
	return rawRequestTo("meet.example.com", method, target, h)
}

// rawRequestTo is rawRequest with the Host header's value.
func rawRequestTo(host, method, target string, h http.Header) string {
	var b strings.Builder
	b.WriteString(method + " " + target + " HTTP/1.1\r\nHost: " + host + "\r\n")
	for k, vs := range h {
		for _, v := range vs {
			b.WriteString(k + ": " + v + "\r\n")
		}
	}
	b.WriteString("Content-Length: 0\r\nConnection: close\r\n\r\n")
	return b.String()
}

// TestPathsOverHTTP sends the requests to gatehouse over real HTTP in
// the three ways proxies describe them: Envoy http_service (the request line
// under /check), X-Original-* (nginx auth_request) and X-Forwarded-*
// (Traefik, Caddy).
func TestPathsOverHTTP(t *testing.T) {
	meet := httptest.NewServer(New(newAuthorizerWith(t, testDirectory(), routes.NewSet(routes.Meet())), Options{}))
	t.Cleanup(meet.Close)
	file := httptest.NewServer(New(newAuthorizer(t, testDirectory()), Options{}))
	t.Cleanup(file.Close)

	channels := []struct {
		name    string
		request func(c pathCase, auth string) string
	}{
		{"http_service", func(c pathCase, auth string) string {
			return rawRequest(c.method, "/check"+c.target, http.Header{"Authorization": {auth}})
		}},
		{"x-original", func(c pathCase, auth string) string {
			return rawRequest("GET", "/check", merge(nginxHeaders(c.method, c.target), http.Header{"Authorization": {auth}}))
		}},
		{"x-forwarded", func(c pathCase, auth string) string {
			return rawRequest("GET", "/check", merge(traefikHeaders(c.method, c.target), http.Header{"Authorization": {auth}}))
		}},
	}
	for _, ch := range channels {
		for _, c := range pathCases() {
			t.Run(ch.name+"/"+c.name, func(t *testing.T) {
				srv := file
				if c.meetOnly {
					srv = meet
				}
				resp, body := rawResponse(t, strings.TrimPrefix(srv.URL, "http://"), ch.request(c, c.auth(t)))
				if resp.StatusCode != c.status {
					t.Fatalf("status %d, want %d; body %s", resp.StatusCode, c.status, body)
				}
				if got := detail(t, body); got != c.detail {
					t.Fatalf("detail %q, want %q", got, c.detail)
				}
				if resp.Header.Get("X-Auth-User-Id") != "" {
					t.Errorf("a deny carries identity")
				}
			})
		}
	}

	// The decoded spellings still reach what they name when the token
	// allows it.
	for _, ch := range channels {
		t.Run(ch.name+"/encoded list with its scope is allowed", func(t *testing.T) {
			c := pathCase{method: "GET", target: "/external-api/v1.0/room%73/?page=2"}
			resp, body := rawResponse(t, strings.TrimPrefix(meet.URL, "http://"), ch.request(c, listOnlyToken(t)))
			if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Auth-Scope") != "rooms:list" {
				t.Fatalf("status %d scope %q body %s", resp.StatusCode, resp.Header.Get("X-Auth-Scope"), body)
			}
		})
	}
}

// TestPathsThroughRealProxies runs the requests through nginx and
// Caddy with their shipped configurations: none may reach the upstream, and
// the client gets gatehouse's answer unless the proxy refused the request
// itself (nginx answers 400 to a method that is not upper case).
func TestPathsThroughRealProxies(t *testing.T) {
	for _, pk := range proxyKinds {
		t.Run(pk.name, func(t *testing.T) {
			t.Parallel()
			for _, routesName := range []string{"meet", "test"} {
				up := proxytest.StartUpstream(t)
				var h http.Handler
				if routesName == "meet" {
					h = New(newAuthorizerWith(t, testDirectory(), routes.NewSet(routes.Meet())), Options{})
				} else {
					h = New(newAuthorizer(t, testDirectory()), Options{})
				}
				gh := httptest.NewServer(h)
				t.Cleanup(gh.Close)
				p := pk.start(t, strings.TrimPrefix(gh.URL, "http://"), up.Addr())
				for _, c := range pathCases() {
					if c.meetOnly != (routesName == "meet") {
						continue
					}
					t.Run(routesName+"/"+c.name, func(t *testing.T) {
						resp, body := rawResponse(t, p.Addr, rawRequestTo(p.Addr, c.method, c.target, http.Header{"Authorization": {c.auth(t)}}))
						switch {
						case pk.name == "nginx" && c.method != strings.ToUpper(c.method):
							if resp.StatusCode != http.StatusBadRequest {
								t.Fatalf("nginx: status %d for method %q, want its own 400; log %s", resp.StatusCode, c.method, p.Log())
							}
						case resp.StatusCode != c.status:
							t.Fatalf("status %d, want %d; body %s; proxy log %s", resp.StatusCode, c.status, body, p.Log())
						case pk.jsonDenies:
							want := c.detail
							if pk.name == "caddy" && c.caddyDetail != "" {
								want = c.caddyDetail
							}
							if got := detail(t, body); got != want {
								t.Fatalf("detail %q, want %q", got, want)
							}
						}
						if resp.Header.Get("X-Upstream") != "" {
							t.Fatalf("the request reached the upstream")
						}
					})
				}
				// A control: the encoded list with its scope goes through, as
				// the upstream (Django) would route it.
				if routesName == "meet" {
					t.Run("meet/encoded list with its scope reaches the upstream", func(t *testing.T) {
						resp, body := rawResponse(t, p.Addr, rawRequestTo(p.Addr, "GET", "/external-api/v1.0/room%73/",
							http.Header{"Authorization": {listOnlyToken(t)}}))
						if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Upstream") != "echo" {
							t.Fatalf("status %d body %s log %s", resp.StatusCode, body, p.Log())
						}
					})
				}
				if n := len(up.Requests()); n > 1 || routesName == "test" && n != 0 {
					t.Errorf("%s: the upstream got %d requests, want only the control", routesName, n)
				}
			}
		})
	}
}

// TestOptionsAsteriskDenied: "OPTIONS *" is not a check; the handler denies
// it (the server disables net/http's automatic answer so that it gets here).
func TestOptionsAsteriskDenied(t *testing.T) {
	for _, prefix := range []string{"", "/"} {
		rec := &recorder{d: allowDecision()}
		srv := httptest.NewUnstartedServer(New(rec, Options{PathPrefix: prefix}))
		srv.Config.DisableGeneralOptionsHandler = true
		srv.Start()
		resp, body := rawResponse(t, strings.TrimPrefix(srv.URL, "http://"),
			rawRequest("OPTIONS", "*", merge(nginxHeaders("GET", roomsPath), bearer("x"))))
		srv.Close()
		if resp.StatusCode != http.StatusForbidden || detail(t, body) != "Insufficient permissions." {
			t.Errorf("prefix %q: OPTIONS * answered %d %s, want 403", prefix, resp.StatusCode, body)
		}
		if n := len(rec.requests()); n != 0 {
			t.Errorf("prefix %q: OPTIONS * reached the decider", prefix)
		}
	}
}

func allowDecision() authz.Decision {
	return authz.Decision{Result: authz.Allow, Reason: authz.ReasonAllowed, Status: http.StatusOK, Identity: testIdentity}
}
