package forwardauth

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatehouse-authz/gatehouse/internal/testkit/proxytest"
	"github.com/gatehouse-authz/gatehouse/userstore"
)

// examplesDir holds the shipped proxy configurations; the tests below run
// them, with only their addresses substituted.
const examplesDir = "../../examples"

// renderExample reads an example file and applies the substitutions, each
// of which must match exactly once: an example edited out of shape fails
// here instead of silently testing something else.
func renderExample(name string, subst ...string) (string, error) {
	b, err := os.ReadFile(filepath.Join(examplesDir, name))
	if err != nil {
		return "", err
	}
	s := string(b)
	for i := 0; i+1 < len(subst); i += 2 {
		if n := strings.Count(s, subst[i]); n != 1 {
			return "", fmt.Errorf("%s: %q occurs %d times, want 1", name, subst[i], n)
		}
		s = strings.Replace(s, subst[i], subst[i+1], 1)
	}
	return s, nil
}

// startGatehouse serves the forward-auth handler over dir on loopback.
func startGatehouse(t *testing.T, dir userstore.Directory) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(New(newAuthorizer(t, dir), Options{}))
	t.Cleanup(srv.Close)
	return srv
}

// proxyKind is one real proxy running its shipped example.
type proxyKind struct {
	name  string
	start func(t *testing.T, gatehouse, upstream string) *proxytest.Proxy
	// jsonDenies: the client gets gatehouse's JSON deny body.
	jsonDenies bool
	// errStatus is what the client gets when gatehouse answers 503
	// (directory down) and when gatehouse is unreachable.
	dirDownStatus, unreachableStatus int
	// dirDownRetryAfter: gatehouse's Retry-After reaches the client.
	dirDownRetryAfter bool
}

var proxyKinds = []proxyKind{
	{
		name: "nginx",
		start: func(t *testing.T, gatehouse, upstream string) *proxytest.Proxy {
			return proxytest.StartNginx(t, func(listen string) (string, error) {
				return renderExample("nginx/nginx.conf",
					"server gatehouse:8080;", "server "+gatehouse+";",
					"server meet-backend:8000;", "server "+upstream+";",
					"listen 80;", "listen "+listen+";",
				)
			})
		},
		jsonDenies: true,
		// auth_request: "any other response code returned by the
		// subrequest is considered an error" and answered 500.
		dirDownStatus:     http.StatusInternalServerError,
		unreachableStatus: http.StatusInternalServerError,
	},
	{
		name: "caddy",
		start: func(t *testing.T, gatehouse, upstream string) *proxytest.Proxy {
			return proxytest.StartCaddy(t, func(listen string) (string, error) {
				return renderExample("caddy/Caddyfile",
					"meet.example.com {", "http://"+listen+" {",
					"reverse_proxy gatehouse:8080 {", "reverse_proxy "+gatehouse+" {",
					"reverse_proxy meet-backend:8000", "reverse_proxy "+upstream,
				)
			})
		},
		jsonDenies: true,
		// forward_auth passes any non-2xx answer through as is.
		dirDownStatus:     http.StatusServiceUnavailable,
		dirDownRetryAfter: true,
		unreachableStatus: http.StatusBadGateway,
	},
}

// forged are identity headers a client tries to smuggle upstream.
var forged = http.Header{
	"X-Auth-User-Id":   {"forged-user"},
	"X-Auth-Client-Id": {"forged-client"},
	"X-Auth-Scope":     {"rooms:create"},
}

// TestThroughRealProxies runs nginx and Caddy with their shipped example
// configurations between a client, gatehouse and an upstream, and checks
// what the client and the upstream see.
func TestThroughRealProxies(t *testing.T) {
	for _, pk := range proxyKinds {
		t.Run(pk.name, func(t *testing.T) {
			t.Parallel()
			up := proxytest.StartUpstream(t)
			gh := startGatehouse(t, testDirectory())
			p := pk.start(t, strings.TrimPrefix(gh.URL, "http://"), up.Addr())
			testThroughProxy(t, pk, p, up)
		})
	}
}

func testThroughProxy(t *testing.T, pk proxyKind, p *proxytest.Proxy, up *proxytest.Upstream) {
	token := signToken(t, nil) // rooms:list rooms:retrieve
	noScope := signToken(t, jwt.MapClaims{"scope": nil})

	// upstreamSaw asserts the request reached the upstream and returns what
	// it saw.
	upstreamSaw := func(t *testing.T, resp *http.Response, body []byte) proxytest.Echo {
		t.Helper()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Upstream") != "echo" {
			t.Fatalf("status %d (X-Upstream %q), want the upstream's 200; body %s; proxy log: %s",
				resp.StatusCode, resp.Header.Get("X-Upstream"), body, p.Log())
		}
		e, err := proxytest.DecodeEcho(body)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	// denied asserts a deny that never reached the upstream.
	denied := func(t *testing.T, resp *http.Response, body []byte, status int, challenge, wantDetail string) {
		t.Helper()
		if resp.StatusCode != status {
			t.Fatalf("status %d, want %d; body %s; proxy log: %s", resp.StatusCode, status, body, p.Log())
		}
		if resp.Header.Get("X-Upstream") != "" {
			t.Errorf("the deny comes from the upstream")
		}
		if got := resp.Header.Values("Www-Authenticate"); challenge == "" && len(got) != 0 ||
			challenge != "" && (len(got) != 1 || got[0] != challenge) {
			t.Errorf("WWW-Authenticate %q, want exactly %q", got, challenge)
		}
		if pk.jsonDenies && resp.Request.Method != http.MethodHead {
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content-type %q", ct)
			}
			if got := detail(t, body); got != wantDetail {
				t.Errorf("detail %q, want %q", got, wantDetail)
			}
		}
	}
	onlyIdentity := func(t *testing.T, e proxytest.Echo, want map[string]string) {
		t.Helper()
		for _, name := range []string{"X-Auth-User-Id", "X-Auth-Client-Id", "X-Auth-Scope"} {
			got := e.Header.Values(name)
			w, ok := want[name]
			switch {
			case !ok && len(got) != 0:
				t.Errorf("upstream got %s %q, want none", name, got)
			case ok && (len(got) != 1 || got[0] != w):
				t.Errorf("upstream got %s %q, want exactly %q", name, got, w)
			}
		}
	}

	t.Run("allowed request reaches upstream with identity, not the forged one", func(t *testing.T) {
		resp, body := do(t, p.URL(), "GET", roomsPath+"?page=2", merge(bearer(token), forged))
		e := upstreamSaw(t, resp, body)
		if e.Method != "GET" || e.URI != roomsPath+"?page=2" {
			t.Errorf("upstream saw %s %s", e.Method, e.URI)
		}
		onlyIdentity(t, e, map[string]string{
			"X-Auth-User-Id": testUserID, "X-Auth-Client-Id": testClientID, "X-Auth-Scope": "rooms:list rooms:retrieve",
		})
	})
	t.Run("token without scope: forged scope removed", func(t *testing.T) {
		resp, body := do(t, p.URL(), "GET", otherPath, merge(bearer(noScope), forged))
		onlyIdentity(t, upstreamSaw(t, resp, body), map[string]string{"X-Auth-User-Id": testUserID, "X-Auth-Client-Id": testClientID})
	})
	t.Run("public route: every forged identity header removed", func(t *testing.T) {
		resp, body := do(t, p.URL(), "POST", tokenPath, forged)
		e := upstreamSaw(t, resp, body)
		if e.Method != "POST" {
			t.Errorf("upstream saw %s", e.Method)
		}
		onlyIdentity(t, e, nil)
	})
	t.Run("HEAD allowed", func(t *testing.T) {
		before := len(up.Requests())
		resp, _ := do(t, p.URL(), "HEAD", roomPath, bearer(token))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d; proxy log: %s", resp.StatusCode, p.Log())
		}
		reqs := up.Requests()
		if len(reqs) != before+1 || reqs[len(reqs)-1].Method != "HEAD" {
			t.Fatalf("upstream did not get the HEAD")
		}
		onlyIdentity(t, reqs[len(reqs)-1], map[string]string{
			"X-Auth-User-Id": testUserID, "X-Auth-Client-Id": testClientID, "X-Auth-Scope": "rooms:list rooms:retrieve",
		})
	})

	// Denials: the upstream must see none of them.
	before := len(up.Requests())
	t.Run("missing token: 401 with Bearer challenge", func(t *testing.T) {
		resp, body := do(t, p.URL(), "GET", roomsPath, forged)
		denied(t, resp, body, 401, "Bearer", "Authentication credentials were not provided.")
	})
	t.Run("HEAD without token: 401, no body", func(t *testing.T) {
		resp, body := do(t, p.URL(), "HEAD", roomsPath, nil)
		denied(t, resp, body, 401, "Bearer", "")
		if len(body) != 0 {
			t.Errorf("HEAD body %q", body)
		}
	})
	t.Run("invalid token: 401 invalid_token", func(t *testing.T) {
		resp, body := do(t, p.URL(), "GET", roomsPath, bearer(token+"x"))
		denied(t, resp, body, 401, `Bearer error="invalid_token", error_description="Invalid token."`, "Invalid token.")
	})
	t.Run("missing scope: 403 insufficient_scope", func(t *testing.T) {
		resp, body := do(t, p.URL(), "POST", roomsPath, bearer(token))
		denied(t, resp, body, 403, `Bearer error="insufficient_scope", scope="rooms:create"`,
			"Insufficient permissions. Required scope: rooms:create")
	})
	t.Run("unknown action: 403 without challenge", func(t *testing.T) {
		resp, body := do(t, p.URL(), "DELETE", roomPath, bearer(token))
		denied(t, resp, body, 403, "", "Insufficient permissions. Unknown action.")
	})
	t.Run("client-sent forwarding headers do not change the path decided", func(t *testing.T) {
		// Both families claim the public token endpoint; the proxy must
		// overwrite or drop them, so the decision is about the real request.
		spoof := merge(nginxHeaders("POST", tokenPath), http.Header{
			"X-Original-Url":     {"http://meet.example.com" + tokenPath},
			"X-Forwarded-Method": {"POST"},
			"X-Forwarded-Uri":    {tokenPath},
		})
		resp, body := do(t, p.URL(), "GET", roomsPath, spoof)
		denied(t, resp, body, 401, "Bearer", "Authentication credentials were not provided.")
	})
	if n := len(up.Requests()); n != before {
		t.Errorf("upstream got %d denied requests", n-before)
	}
}

// TestProxyErrorStatuses: gatehouse's 503 (directory down) and gatehouse
// unreachable both become the proxy's error, and nothing reaches the
// upstream.
func TestProxyErrorStatuses(t *testing.T) {
	for _, pk := range proxyKinds {
		t.Run(pk.name, func(t *testing.T) {
			t.Parallel()
			up := proxytest.StartUpstream(t)
			token := signToken(t, nil)

			gh := startGatehouse(t, deadDirectory{})
			p := pk.start(t, strings.TrimPrefix(gh.URL, "http://"), up.Addr())
			resp, body := do(t, p.URL(), "GET", roomsPath, bearer(token))
			if resp.StatusCode != pk.dirDownStatus {
				t.Fatalf("directory down: status %d, want %d; body %s; log %s", resp.StatusCode, pk.dirDownStatus, body, p.Log())
			}
			if ra := resp.Header.Get("Retry-After"); pk.dirDownRetryAfter != (ra == "1") {
				t.Errorf("directory down: Retry-After %q", ra)
			}
			if pk.dirDownRetryAfter && detail(t, body) != "Service temporarily unavailable." {
				t.Errorf("directory down: body %s", body)
			}

			gh.Close()
			resp, body = do(t, p.URL(), "GET", roomsPath, bearer(token))
			if resp.StatusCode != pk.unreachableStatus {
				t.Errorf("gatehouse unreachable: status %d, want %d; body %s", resp.StatusCode, pk.unreachableStatus, body)
			}
			if n := len(up.Requests()); n != 0 {
				t.Errorf("upstream got %d requests", n)
			}
		})
	}
}

// TestIngressNginxEquivalent runs real nginx with the configuration
// ingress-nginx generates for the annotations of the shipped Ingress
// (rootfs/etc/nginx/template/nginx.tmpl: the auth location with
// X-Original-URL/-Method, auth-method's proxy_method and X-Original-URI,
// proxy_pass $target; buildAuthResponseHeaders' auth_request_set and
// proxy_set_header lines).
func TestIngressNginxEquivalent(t *testing.T) {
	ann := ingressAnnotations(t)
	up := proxytest.StartUpstream(t)
	gh := startGatehouse(t, testDirectory())
	authURL := strings.Replace(ann["nginx.ingress.kubernetes.io/auth-url"],
		"gatehouse.gatehouse.svc.cluster.local:8080", strings.TrimPrefix(gh.URL, "http://"), 1)
	if authURL == ann["nginx.ingress.kubernetes.io/auth-url"] {
		t.Fatalf("auth-url %q does not name the gatehouse Service", authURL)
	}
	method := ann["nginx.ingress.kubernetes.io/auth-method"]
	var respHeaders strings.Builder
	for i, h := range strings.Split(ann["nginx.ingress.kubernetes.io/auth-response-headers"], ",") {
		h = strings.TrimSpace(h)
		fmt.Fprintf(&respHeaders, "            auth_request_set $authHeader%d $upstream_http_%s;\n", i,
			strings.ReplaceAll(strings.ToLower(h), "-", "_"))
		fmt.Fprintf(&respHeaders, "            proxy_set_header '%s' $authHeader%d;\n", h, i)
	}
	var authMethod string
	if method != "" {
		authMethod = "proxy_method " + method + ";\n            proxy_set_header X-Original-URI $request_uri;"
	}
	p := proxytest.StartNginx(t, func(listen string) (string, error) {
		return fmt.Sprintf(ingressNginxConf, listen, authMethod, authURL, respHeaders.String(), up.Addr()), nil
	})

	token := signToken(t, nil)
	t.Run("allowed, forged identity replaced", func(t *testing.T) {
		resp, body := do(t, p.URL(), "GET", roomsPath, merge(bearer(token), forged))
		if resp.StatusCode != 200 {
			t.Fatalf("status %d body %s log %s", resp.StatusCode, body, p.Log())
		}
		e, err := proxytest.DecodeEcho(body)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.Header.Values("X-Auth-User-Id"); len(got) != 1 || got[0] != testUserID {
			t.Errorf("X-Auth-User-Id %q", got)
		}
	})
	t.Run("public route, forged identity removed", func(t *testing.T) {
		resp, body := do(t, p.URL(), "POST", tokenPath, forged)
		e, err := proxytest.DecodeEcho(body)
		if resp.StatusCode != 200 || err != nil {
			t.Fatalf("status %d body %s", resp.StatusCode, body)
		}
		for _, h := range []string{"X-Auth-User-Id", "X-Auth-Client-Id", "X-Auth-Scope"} {
			if got := e.Header.Values(h); len(got) != 0 {
				t.Errorf("%s %q reached the upstream", h, got)
			}
		}
	})
	t.Run("missing scope", func(t *testing.T) {
		resp, _ := do(t, p.URL(), "POST", roomsPath, bearer(token))
		if resp.StatusCode != 403 {
			t.Errorf("status %d", resp.StatusCode)
		}
	})
	t.Run("missing token: 401 with challenge, nginx's page", func(t *testing.T) {
		resp, _ := do(t, p.URL(), "GET", roomsPath, nil)
		if resp.StatusCode != 401 || resp.Header.Get("Www-Authenticate") != "Bearer" {
			t.Errorf("status %d WWW-Authenticate %q", resp.StatusCode, resp.Header.Get("Www-Authenticate"))
		}
	})
	t.Run("client X-Original-URI is overwritten by auth-method's", func(t *testing.T) {
		resp, _ := do(t, p.URL(), "GET", roomsPath, nginxHeaders("POST", tokenPath))
		if resp.StatusCode != 401 {
			t.Errorf("status %d, want 401", resp.StatusCode)
		}
	})
	// nginx accepts "Host: h?x", making X-Original-URL http://h?x/...; a
	// lenient parser would read the path as "" (authenticate only) while
	// the backend routes the real path. gatehouse refuses the check.
	t.Run("Host with ? is refused, not misparsed", func(t *testing.T) {
		status := rawStatus(t, p.Addr, "POST "+roomsPath+" HTTP/1.1\r\nHost: h?x\r\nAuthorization: Bearer "+token+"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		if status != 403 {
			t.Errorf("status %d, want 403; log %s", status, p.Log())
		}
	})
	if n := len(up.Requests()); n != 2 {
		t.Errorf("upstream got %d requests, want the 2 allowed", n)
	}
}

// ingressNginxConf reproduces the server ingress-nginx generates for one
// Ingress path with auth-url (trimmed of Lua, TLS and logging).
const ingressNginxConf = `events {}
http {
    server {
        listen %s;

        location = /_external-auth-Lw-Prefix {
            internal;
            proxy_pass_request_body     off;
            proxy_set_header            Content-Length          "";
            proxy_set_header            X-Forwarded-Proto       "";
            proxy_set_header            X-Request-ID            $request_id;
            %s
            proxy_set_header            Host                    gatehouse.gatehouse.svc.cluster.local;
            proxy_set_header            X-Original-URL          $scheme://$http_host$request_uri;
            proxy_set_header            X-Original-Method       $request_method;
            proxy_set_header            X-Sent-From             "nginx-ingress-controller";
            proxy_set_header            X-Real-IP               $remote_addr;
            proxy_set_header            X-Forwarded-For         $remote_addr;
            proxy_set_header            X-Auth-Request-Redirect $request_uri;
            proxy_http_version          1.1;
            proxy_pass_request_headers  on;
            set $target %s;
            proxy_pass $target;
        }

        location / {
            auth_request        /_external-auth-Lw-Prefix;
            auth_request_set    $auth_cookie $upstream_http_set_cookie;
            add_header          Set-Cookie $auth_cookie;
%s
            proxy_set_header Host $host;
            proxy_pass http://%s;
        }
    }
}
`

// ingressAnnotations reads the annotations of the shipped Ingress.
func ingressAnnotations(t *testing.T) map[string]string {
	t.Helper()
	var ing struct {
		Kind     string `yaml:"kind"`
		Metadata struct {
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"metadata"`
		Spec struct {
			Rules []struct {
				HTTP struct {
					Paths []struct {
						Path     string `yaml:"path"`
						PathType string `yaml:"pathType"`
					} `yaml:"paths"`
				} `yaml:"http"`
			} `yaml:"rules"`
		} `yaml:"spec"`
	}
	readYAML(t, "ingress-nginx/ingress.yaml", &ing)
	if ing.Kind != "Ingress" || len(ing.Spec.Rules) != 1 || len(ing.Spec.Rules[0].HTTP.Paths) != 1 ||
		ing.Spec.Rules[0].HTTP.Paths[0].Path != "/" || ing.Spec.Rules[0].HTTP.Paths[0].PathType != "Prefix" {
		t.Fatalf("the Ingress is not the / Prefix ingress (every path) this test reproduces: %+v", ing)
	}
	a := ing.Metadata.Annotations
	if !strings.HasSuffix(a["nginx.ingress.kubernetes.io/auth-url"], ":8080"+DefaultPathPrefix) {
		t.Errorf("auth-url %q does not end with gatehouse's port and prefix", a["nginx.ingress.kubernetes.io/auth-url"])
	}
	return a
}

// rawStatus writes a raw HTTP/1.1 request (for headers net/http refuses to
// send) and returns the response status.
func rawStatus(t *testing.T, addr, request string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(request)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
