package deploycheck

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/gatehouse-authz/gatehouse/authz/forwardauth"
	"github.com/gatehouse-authz/gatehouse/internal/testkit/proxytest"
)

const (
	ingressNginxExample = "examples/ingress-nginx/ingress.yaml"
	traefikFileExample  = "examples/traefik/dynamic.yaml"
	traefikCRDExample   = "examples/traefik/middleware.yaml"
	// meetBackend is the Service (and Traefik service) of Meet's backend in
	// the recipes.
	meetBackend = "meet-backend"

	annAuthURL       = "nginx.ingress.kubernetes.io/auth-url"
	annAuthMethod    = "nginx.ingress.kubernetes.io/auth-method"
	annAuthResponse  = "nginx.ingress.kubernetes.io/auth-response-headers"
	annEnableGlobal  = "nginx.ingress.kubernetes.io/enable-global-auth"
	annAuthSnippet   = "nginx.ingress.kubernetes.io/auth-snippet"
	annConfigSnippet = "nginx.ingress.kubernetes.io/configuration-snippet"
)

// decodeIngresses decodes every document of a file strictly into
// networking.k8s.io/v1 Ingresses.
func decodeIngresses(t *testing.T, rel string) []*networkingv1.Ingress {
	t.Helper()
	var out []*networkingv1.Ingress
	for i, doc := range splitYAMLDocs(readRepoFile(t, rel)) {
		ing := &networkingv1.Ingress{}
		if err := decodeYAMLStrict(doc, ing); err != nil {
			t.Fatalf("%s document %d: %v", rel, i, err)
		}
		if ing.APIVersion != "networking.k8s.io/v1" || ing.Kind != "Ingress" {
			t.Fatalf("%s document %d: %s %s, want networking.k8s.io/v1 Ingress", rel, i, ing.APIVersion, ing.Kind)
		}
		out = append(out, ing)
	}
	if len(out) == 0 {
		t.Fatalf("%s holds no Ingress", rel)
	}
	return out
}

// ingressPathMatches implements the Kubernetes Ingress path types: Exact, and
// Prefix matched element by element ("/a/" matches /a, /a/ and /a/b, not /ab).
func ingressPathMatches(t *testing.T, p networkingv1.HTTPIngressPath, path string) bool {
	t.Helper()
	if p.PathType == nil {
		t.Fatalf("path %q without pathType", p.Path)
	}
	switch *p.PathType {
	case networkingv1.PathTypeExact:
		return path == p.Path
	case networkingv1.PathTypePrefix:
		prefix := strings.TrimSuffix(p.Path, "/")
		return prefix == "" || path == prefix || strings.HasPrefix(path, prefix+"/")
	default:
		t.Fatalf("path %q: pathType %s is controller-specific; use Prefix or Exact", p.Path, *p.PathType)
		return false
	}
}

// checkIngressAuth: ing sends every request of its paths to gatehouse and
// copies gatehouse's identity headers, and only them, onto the request.
func checkIngressAuth(t *testing.T, ing *networkingv1.Ingress) {
	t.Helper()
	a := ing.Annotations
	u, err := url.Parse(a[annAuthURL])
	if err != nil || u.Path != forwardauth.DefaultPathPrefix || u.Port() != "8080" {
		t.Errorf("Ingress %s: auth-url %q is not gatehouse's :8080%s", ing.Name, a[annAuthURL], forwardauth.DefaultPathPrefix)
	}
	if a[annAuthMethod] != "GET" {
		t.Errorf("Ingress %s: auth-method %q, want GET (it makes ingress-nginx send X-Original-URI)", ing.Name, a[annAuthMethod])
	}
	var names []string
	for _, h := range strings.Split(a[annAuthResponse], ",") {
		names = append(names, strings.ToLower(strings.TrimSpace(h)))
	}
	if !slices.Equal(names, identityHeaderNames) {
		t.Errorf("Ingress %s: auth-response-headers %q, want %v: each one listed is replaced, or removed when gatehouse sends none", ing.Name, a[annAuthResponse], identityHeaderNames)
	}
	if a[annEnableGlobal] == "false" {
		t.Errorf("Ingress %s opts out of global auth", ing.Name)
	}
	for _, k := range []string{annAuthSnippet, annConfigSnippet} {
		if _, ok := a[k]; ok {
			t.Errorf("Ingress %s uses %s: snippets are disabled by default, the recipe must not need them", ing.Name, k)
		}
	}
}

// TestIngressNginxRecipeCoversEveryPath: every Ingress of the recipe that
// routes to Meet's backend carries gatehouse's auth annotations (they apply
// per Ingress, to all its paths), and together they serve every path of
// the backend, so that no path reaches it without a check that strips
// client-sent identity headers.
func TestIngressNginxRecipeCoversEveryPath(t *testing.T) {
	t.Parallel()
	ings := decodeIngresses(t, ingressNginxExample)
	for _, ing := range ings {
		for _, r := range ing.Spec.Rules {
			if r.HTTP == nil {
				continue
			}
			for _, p := range r.HTTP.Paths {
				if p.Backend.Service == nil || p.Backend.Service.Name != meetBackend {
					t.Errorf("Ingress %s path %s: backend %+v, want Service %s", ing.Name, p.Path, p.Backend, meetBackend)
					continue
				}
				checkIngressAuth(t, ing)
			}
		}
	}
	for _, path := range append([]string{apiTokenPath, apiRoomsPath}, pathsOutsideAPI...) {
		covered := false
		for _, ing := range ings {
			for _, r := range ing.Spec.Rules {
				if r.HTTP == nil {
					continue
				}
				for _, p := range r.HTTP.Paths {
					covered = covered || ingressPathMatches(t, p, path)
				}
			}
		}
		if !covered {
			t.Errorf("%s routes no Ingress path for %s: Meet's other Ingresses would serve it without gatehouse, passing a client's %s to the backend", ingressNginxExample, path, identityHeaderNames[0])
		}
	}
	if s := string(readRepoFile(t, ingressNginxExample)); !strings.Contains(s, allPathsRoutesExample) {
		t.Errorf("%s does not tell to run gatehouse with %s", ingressNginxExample, allPathsRoutesExample)
	}
}

// ingressNginxServer is the server block ingress-nginx generates for the
// Ingresses (rootfs/etc/nginx/template/nginx.tmpl, trimmed of Lua, TLS and
// logging): for each path, an internal auth location sending GET auth-url
// with X-Original-URL/-Method (and X-Original-URI, from auth-method), and the
// path's location with auth_request and, for each auth-response-headers
// name, auth_request_set and proxy_set_header (buildAuthResponseHeaders).
func ingressNginxServer(t *testing.T, ings []*networkingv1.Ingress, gatehouseAddr, upstreamAddr, listen string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "events {}\nhttp {\n    server {\n        listen %s;\n", listen)
	for _, ing := range ings {
		a := ing.Annotations
		authURL := strings.Replace(a[annAuthURL], "gatehouse.gatehouse.svc.cluster.local:8080", gatehouseAddr, 1)
		if authURL == a[annAuthURL] {
			t.Fatalf("Ingress %s: auth-url %q does not name the gatehouse Service", ing.Name, a[annAuthURL])
		}
		for _, r := range ing.Spec.Rules {
			for _, p := range r.HTTP.Paths {
				loc := "location " + p.Path
				if *p.PathType == networkingv1.PathTypeExact {
					loc = "location = " + p.Path
				}
				authLoc := "/_external-auth-" + base64.RawURLEncoding.EncodeToString([]byte(p.Path)) + "-" + string(*p.PathType)
				fmt.Fprintf(&b, `
        location = %s {
            internal;
            proxy_pass_request_body     off;
            proxy_set_header            Content-Length          "";
            proxy_set_header            X-Forwarded-Proto       "";
            proxy_set_header            X-Request-ID            $request_id;
            proxy_method                %s;
            proxy_set_header            X-Original-URI          $request_uri;
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

        %s {
            auth_request        %s;
            auth_request_set    $auth_cookie $upstream_http_set_cookie;
            add_header          Set-Cookie $auth_cookie;
`, authLoc, a[annAuthMethod], authURL, loc, authLoc)
				for i, h := range strings.Split(a[annAuthResponse], ",") {
					h = strings.TrimSpace(h)
					fmt.Fprintf(&b, "            auth_request_set $authHeader%d $upstream_http_%s;\n", i, strings.ReplaceAll(strings.ToLower(h), "-", "_"))
					fmt.Fprintf(&b, "            proxy_set_header '%s' $authHeader%d;\n", h, i)
				}
				fmt.Fprintf(&b, "            proxy_set_header Host $host;\n            proxy_pass http://%s;\n        }\n", upstreamAddr)
			}
		}
	}
	b.WriteString("    }\n}\n")
	return b.String()
}

// TestIngressNginxRecipeStripsForgedIdentity runs the recipe's intent end to
// end: real nginx configured as ingress-nginx configures itself for the
// recipe's Ingresses, gatehouse with the recipe's routes file over real
// HTTP, and an upstream that records what it receives. A forged identity
// header never reaches it, on any path.
func TestIngressNginxRecipeStripsForgedIdentity(t *testing.T) {
	t.Parallel()
	ings := decodeIngresses(t, ingressNginxExample)
	g := startGatehouse(t, filepath.Join(repoRoot(t), filepath.FromSlash(allPathsRoutesExample)))
	up := proxytest.StartUpstream(t)
	p := proxytest.StartNginx(t, func(listen string) (string, error) {
		return ingressNginxServer(t, ings, g.httpAddr, up.Addr(), listen), nil
	})
	send := func(method, path string, h http.Header) (*http.Response, []byte) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, method, p.URL()+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header = h.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		return resp, readBody(t, resp)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("nginx log:\n%s", p.Log())
		}
	})
	upstreamSaw := func(what string, resp *http.Response, body []byte) http.Header {
		t.Helper()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Upstream") != "echo" {
			t.Errorf("%s: status %d, want the upstream's 200: the recipe does not send this path through gatehouse to the backend", what, resp.StatusCode)
			return nil
		}
		e, err := proxytest.DecodeEcho(body)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return e.Header
	}
	for _, path := range append([]string{apiTokenPath}, pathsOutsideAPI...) {
		for _, method := range []string{"GET", "POST"} {
			if path == apiTokenPath && method == "GET" {
				continue // only POST is public there
			}
			what := method + " " + path
			resp, body := send(method, path, forgedIdentity())
			if h := upstreamSaw(what, resp, body); h != nil {
				checkUpstreamIdentity(t, what, h, [3]string{})
			}
		}
	}
	withToken := mergeHeaders(forgedIdentity(), http.Header{"Authorization": {"Bearer " + g.token}})
	resp, body := send("GET", apiRoomsPath, withToken)
	if h := upstreamSaw("GET "+apiRoomsPath+" with a token", resp, body); h != nil {
		checkUpstreamIdentity(t, "GET "+apiRoomsPath+" with a token", h, [3]string{g.userID, e2eClient, "rooms:list"})
	}
	before := len(up.Requests())
	if resp, _ := send("GET", apiRoomsPath, forgedIdentity()); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET %s with forged identity and no token: status %d, want 401", apiRoomsPath, resp.StatusCode)
	}
	if resp, _ := send("POST", apiRoomsPath, withToken); resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST %s without rooms:create (forged X-Auth-Scope rooms:create): status %d, want 403", apiRoomsPath, resp.StatusCode)
	}
	if n := len(up.Requests()) - before; n != 0 {
		t.Errorf("the upstream got %d denied requests", n)
	}
}

// traefikRouter is what the coverage check needs of a Traefik router.
type traefikRouter struct {
	name, rule  string
	middlewares []string
	services    []string
}

// traefikHostOnly matches a rule that selects a host and no path.
var traefikHostOnly = regexp.MustCompile("^Host\\(`[^`]+`\\)$")

// TestTraefikRecipeCoversEveryPath: every router of the Traefik recipes
// that sends to Meet's backend applies the gatehouse middleware and matches
// every path of its host, so that no path reaches the backend with a
// client's identity headers unchecked (forwardAuth replaces or removes each
// authResponseHeaders name only on the requests it checks).
func TestTraefikRecipeCoversEveryPath(t *testing.T) {
	t.Parallel()
	var file struct {
		HTTP struct {
			Middlewares map[string]any `json:"middlewares"`
			Routers     map[string]struct {
				EntryPoints []string `json:"entryPoints,omitempty"`
				Rule        string   `json:"rule"`
				Middlewares []string `json:"middlewares"`
				Service     string   `json:"service"`
			} `json:"routers"`
			Services map[string]any `json:"services"`
		} `json:"http"`
	}
	if err := decodeYAMLStrict(readRepoFile(t, traefikFileExample), &file); err != nil {
		t.Fatalf("%s: %v", traefikFileExample, err)
	}
	var routers []traefikRouter
	for name, r := range file.HTTP.Routers {
		routers = append(routers, traefikRouter{traefikFileExample + " " + name, r.Rule, r.Middlewares, []string{r.Service}})
	}
	for i, doc := range splitYAMLDocs(readRepoFile(t, traefikCRDExample)) {
		var head struct {
			APIVersion string         `json:"apiVersion"`
			Kind       string         `json:"kind"`
			Metadata   map[string]any `json:"metadata"`
			Spec       map[string]any `json:"spec"`
		}
		if err := decodeYAMLStrict(doc, &head); err != nil {
			t.Fatalf("%s document %d: %v", traefikCRDExample, i, err)
		}
		if head.Kind != "IngressRoute" {
			continue
		}
		var ir struct {
			APIVersion string         `json:"apiVersion"`
			Kind       string         `json:"kind"`
			Metadata   map[string]any `json:"metadata"`
			Spec       struct {
				EntryPoints []string `json:"entryPoints"`
				Routes      []struct {
					Match       string `json:"match"`
					Kind        string `json:"kind"`
					Middlewares []struct {
						Name string `json:"name"`
					} `json:"middlewares"`
					Services []struct {
						Name string `json:"name"`
						Port int    `json:"port"`
					} `json:"services"`
				} `json:"routes"`
			} `json:"spec"`
		}
		if err := decodeYAMLStrict(doc, &ir); err != nil {
			t.Fatalf("%s document %d: %v", traefikCRDExample, i, err)
		}
		for j, r := range ir.Spec.Routes {
			tr := traefikRouter{name: fmt.Sprintf("%s IngressRoute route %d", traefikCRDExample, j), rule: r.Match}
			for _, m := range r.Middlewares {
				tr.middlewares = append(tr.middlewares, m.Name)
			}
			for _, s := range r.Services {
				tr.services = append(tr.services, s.Name)
			}
			routers = append(routers, tr)
		}
	}
	if len(routers) < 2 {
		t.Fatalf("found %d routers in the Traefik recipes, want at least one in each file", len(routers))
	}
	for _, r := range routers {
		if !slices.Contains(r.services, meetBackend) {
			t.Errorf("%s sends to %v, not %s", r.name, r.services, meetBackend)
			continue
		}
		if !slices.Contains(r.middlewares, "gatehouse") {
			t.Errorf("%s sends to %s without the gatehouse middleware", r.name, meetBackend)
		}
		if !traefikHostOnly.MatchString(r.rule) {
			t.Errorf("%s rule %q restricts the path: every path of the backend must go through gatehouse, or a client's %s reaches it unchecked on the others", r.name, r.rule, identityHeaderNames[0])
		}
	}
	for _, rel := range []string{traefikFileExample, traefikCRDExample} {
		if s := string(readRepoFile(t, rel)); !strings.Contains(s, allPathsRoutesExample) {
			t.Errorf("%s does not tell to run gatehouse with %s", rel, allPathsRoutesExample)
		}
	}
}
