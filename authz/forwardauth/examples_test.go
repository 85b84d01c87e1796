package forwardauth

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/golang-jwt/jwt/v5"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// readYAML decodes one example file (the first document) into v.
func readYAML(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(examplesDir, name))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// identityNames are the default identity headers, lower case.
var identityNames = []string{"x-auth-user-id", "x-auth-client-id", "x-auth-scope"}

// envoyExtAuthz loads examples/envoy/http-service.yaml as an Envoy
// Bootstrap (failing on any field Envoy's API does not have, and on its
// validation rules) and returns its ext_authz filter.
func envoyExtAuthz(t *testing.T) *extauthzv3.ExtAuthz {
	t.Helper()
	var doc any
	readYAML(t, "envoy/http-service.yaml", &doc)
	js, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var boot bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(js, &boot); err != nil {
		t.Fatalf("not an Envoy bootstrap: %v", err)
	}
	if err := boot.ValidateAll(); err != nil {
		t.Fatalf("bootstrap invalid: %v", err)
	}
	listeners := boot.GetStaticResources().GetListeners()
	if len(listeners) != 1 {
		t.Fatalf("%d listeners", len(listeners))
	}
	var hcm hcmv3.HttpConnectionManager
	if err := listeners[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	if err := hcm.ValidateAll(); err != nil {
		t.Fatalf("http_connection_manager invalid: %v", err)
	}
	var ea extauthzv3.ExtAuthz
	filters := hcm.GetHttpFilters()
	if len(filters) != 2 || filters[1].GetName() != "envoy.filters.http.router" {
		t.Fatalf("filters %v: want ext_authz then router", filters)
	}
	if err := filters[0].GetTypedConfig().UnmarshalTo(&ea); err != nil {
		t.Fatalf("first filter: %v", err)
	}
	if err := ea.ValidateAll(); err != nil {
		t.Fatalf("ext_authz invalid: %v", err)
	}
	return &ea
}

// TestEnvoyExample checks the Envoy example's settings that gatehouse relies
// on.
func TestEnvoyExample(t *testing.T) {
	ea := envoyExtAuthz(t)
	hs := ea.GetHttpService()
	if hs == nil {
		t.Fatal("no http_service")
	}
	if hs.GetPathPrefix() != DefaultPathPrefix || hs.GetPathOverride() != "" {
		t.Errorf("path_prefix %q path_override %q", hs.GetPathPrefix(), hs.GetPathOverride())
	}
	if ea.GetFailureModeAllow() || ea.GetStatusOnError().GetCode() != 503 {
		t.Errorf("failure_mode_allow %v status_on_error %v: must fail closed with 503", ea.GetFailureModeAllow(), ea.GetStatusOnError())
	}
	if to := hs.GetServerUri().GetTimeout().AsDuration(); to <= DefaultTimeout {
		t.Errorf("timeout %v is not above gatehouse's decision bound %v", to, DefaultTimeout)
	}
	if got := exactNames(t, hs.GetAuthorizationResponse().GetAllowedUpstreamHeaders()); !slices.Equal(got, identityNames) {
		t.Errorf("allowed_upstream_headers %v, want %v", got, identityNames)
	}
	if hasField(t, hs.GetAuthorizationRequest(), "allowed_headers") {
		t.Error("uses the deprecated authorization_request.allowed_headers")
	}
	for _, h := range []string{"x-original-uri", "x-original-url", "x-original-method", "x-forwarded-uri", "x-forwarded-method"} {
		if !listMatches(t, ea.GetDisallowedHeaders(), h) {
			t.Errorf("disallowed_headers lets %s through", h)
		}
	}
}

// hasField reports whether m sets the field named name. It reads the field
// by reflection so that checking that a deprecated field is unset needs no
// deprecated accessor; a misspelt name fails the test rather than passing.
func hasField(t *testing.T, m proto.Message, name protoreflect.Name) bool {
	t.Helper()
	r := m.ProtoReflect()
	fd := r.Descriptor().Fields().ByName(name)
	if fd == nil {
		t.Fatalf("%s has no field %s", r.Descriptor().FullName(), name)
	}
	return r.Has(fd)
}

// exactNames returns the exact patterns of a list matcher.
func exactNames(t *testing.T, l *matcherv3.ListStringMatcher) []string {
	t.Helper()
	var out []string
	for _, p := range l.GetPatterns() {
		if p.GetExact() == "" {
			t.Fatalf("pattern %v is not exact", p)
		}
		out = append(out, p.GetExact())
	}
	return out
}

// listMatches evaluates a ListStringMatcher of exact and prefix patterns
// (the ones the example uses) on a lower-case header name.
func listMatches(t *testing.T, l *matcherv3.ListStringMatcher, name string) bool {
	t.Helper()
	for _, p := range l.GetPatterns() {
		switch {
		case p.GetExact() != "":
			if name == p.GetExact() {
				return true
			}
		case p.GetPrefix() != "":
			if strings.HasPrefix(name, p.GetPrefix()) {
				return true
			}
		default:
			t.Fatalf("pattern %v: the model handles exact and prefix only", p)
		}
	}
	return false
}

// envoyHTTPService models Envoy's ext_authz http_service for one request,
// following source/extensions/filters/common/ext_authz/ext_authz_http_impl.cc
// (RawHttpClientImpl::check and toResponse) and the filter's onComplete:
//
//   - the check request has the original method, path_prefix + path, the
//     original Host, Content-Length 0, and only the client headers that are
//     allowed (authorization always) and not disallowed;
//   - any 5xx answer is an error: status_on_error, empty body;
//   - exactly 200 is OK: response headers matching allowed_upstream_headers
//     replace the request's, then x-envoy-auth-headers-to-remove is applied;
//   - anything else is a denial passed to the client with its body and the
//     headers in allowed_client_headers plus status, content-length,
//     www-authenticate and location.
//
// It returns the response the client gets, and the request headers the
// upstream gets (nil when the request is not forwarded).
func envoyHTTPService(t *testing.T, ea *extauthzv3.ExtAuthz, gatehouse http.Handler, method, path string, client http.Header) (*httptest.ResponseRecorder, http.Header) {
	t.Helper()
	hs := ea.GetHttpService()
	check := httptest.NewRequest(method, hs.GetPathPrefix()+path, nil)
	check.Host = "meet.example.com"
	check.Header = http.Header{"Content-Length": {"0"}}
	for k, v := range client {
		lk := strings.ToLower(k)
		if (lk == "authorization" || listMatches(t, ea.GetAllowedHeaders(), lk)) && !listMatches(t, ea.GetDisallowedHeaders(), lk) {
			check.Header[k] = v
		}
	}
	w := httptest.NewRecorder()
	gatehouse.ServeHTTP(w, check)
	res := w.Result()

	out := httptest.NewRecorder()
	switch {
	case res.StatusCode >= 500:
		out.WriteHeader(int(ea.GetStatusOnError().GetCode()))
		return out, nil
	case res.StatusCode == http.StatusOK:
		upstream := client.Clone()
		for k, v := range res.Header {
			if listMatches(t, hs.GetAuthorizationResponse().GetAllowedUpstreamHeaders(), strings.ToLower(k)) {
				upstream[k] = v
			}
		}
		for _, v := range res.Header.Values("X-Envoy-Auth-Headers-To-Remove") {
			for _, name := range strings.Split(v, ",") {
				upstream.Del(strings.TrimSpace(name))
			}
		}
		return out, upstream
	default:
		for k, v := range res.Header {
			lk := strings.ToLower(k)
			if slices.Contains([]string{"content-length", "www-authenticate", "location"}, lk) ||
				listMatches(t, hs.GetAuthorizationResponse().GetAllowedClientHeaders(), lk) {
				out.Header()[k] = v
			}
		}
		out.WriteHeader(res.StatusCode)
		_, _ = io.Copy(out, res.Body)
		return out, nil
	}
}

// TestEnvoyHTTPServiceModel runs the handler behind the model of Envoy's
// http_service configured by the shipped example.
func TestEnvoyHTTPServiceModel(t *testing.T) {
	ea := envoyExtAuthz(t)
	h := New(newAuthorizer(t, testDirectory()), Options{})
	token := signToken(t, nil)

	_, up := envoyHTTPService(t, ea, h, "GET", roomsPath, merge(bearer(token), forged))
	if up == nil || up.Get("X-Auth-User-Id") != testUserID || up.Get("X-Auth-Scope") != "rooms:list rooms:retrieve" {
		t.Errorf("allowed: upstream headers %v", up)
	}
	_, up = envoyHTTPService(t, ea, h, "GET", otherPath, merge(bearer(signToken(t, jwt.MapClaims{"scope": nil})), forged))
	if up == nil || up.Get("X-Auth-User-Id") != testUserID || len(up.Values("X-Auth-Scope")) != 0 {
		t.Errorf("no scope: upstream headers %v", up)
	}
	_, up = envoyHTTPService(t, ea, h, "POST", tokenPath, forged)
	if up == nil || len(up.Values("X-Auth-User-Id"))+len(up.Values("X-Auth-Client-Id"))+len(up.Values("X-Auth-Scope")) != 0 {
		t.Errorf("public: upstream headers %v", up)
	}
	w, up := envoyHTTPService(t, ea, h, "POST", roomsPath, bearer(token))
	if up != nil || w.Code != 403 || w.Header().Get("Content-Type") != "application/json" ||
		w.Header().Get("Www-Authenticate") != `Bearer error="insufficient_scope", scope="rooms:create"` ||
		detail(t, w.Body.Bytes()) != "Insufficient permissions. Required scope: rooms:create" {
		t.Errorf("missing scope: %d %v %s", w.Code, w.Header(), w.Body)
	}
	// A client's X-Original-* never reaches gatehouse (disallowed_headers),
	// so the check is about the real path.
	w, up = envoyHTTPService(t, ea, h, "GET", roomsPath, nginxHeaders("POST", tokenPath))
	if up != nil || w.Code != 401 || w.Header().Get("Www-Authenticate") != "Bearer" {
		t.Errorf("spoofed X-Original-*: %d %v", w.Code, w.Header())
	}
	w, up = envoyHTTPService(t, ea, New(newAuthorizer(t, deadDirectory{}), Options{}), "GET", roomsPath, bearer(token))
	if up != nil || w.Code != 503 {
		t.Errorf("directory down: %d", w.Code)
	}
}

// traefikForwardAuth is the forwardAuth middleware configuration.
type traefikForwardAuth struct {
	Address             string   `yaml:"address"`
	TrustForwardHeader  bool     `yaml:"trustForwardHeader"`
	AuthRequestHeaders  []string `yaml:"authRequestHeaders"`
	AuthResponseHeaders []string `yaml:"authResponseHeaders"`
}

// traefikExamples returns the forwardAuth settings of both Traefik examples,
// which must agree apart from the address's host.
func traefikExamples(t *testing.T) []traefikForwardAuth {
	t.Helper()
	var file struct {
		HTTP struct {
			Middlewares map[string]struct {
				ForwardAuth traefikForwardAuth `yaml:"forwardAuth"`
			} `yaml:"middlewares"`
		} `yaml:"http"`
	}
	readYAML(t, "traefik/dynamic.yaml", &file)
	var crd struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Spec       struct {
			ForwardAuth traefikForwardAuth `yaml:"forwardAuth"`
		} `yaml:"spec"`
	}
	readYAML(t, "traefik/middleware.yaml", &crd)
	if crd.Kind != "Middleware" || crd.APIVersion != "traefik.io/v1alpha1" {
		t.Errorf("middleware.yaml starts with %s %s", crd.APIVersion, crd.Kind)
	}
	return []traefikForwardAuth{file.HTTP.Middlewares["gatehouse"].ForwardAuth, crd.Spec.ForwardAuth}
}

// traefikForward models Traefik's forwardAuth for one request, following
// pkg/middlewares/auth/forward.go (ServeHTTP and writeHeader): a GET to the
// address with the client's headers (only authRequestHeaders when set) and
// X-Forwarded-For/-Method/-Proto/-Host/-Uri set by Traefik
// (trustForwardHeader false); on 2xx each authResponseHeaders name is deleted
// from the request and copied from the answer; otherwise the answer goes to
// the client.
func traefikForward(t *testing.T, fa traefikForwardAuth, gatehouse http.Handler, method, target string, client http.Header) (*httptest.ResponseRecorder, http.Header) {
	t.Helper()
	u, err := url.Parse(fa.Address)
	if err != nil {
		t.Fatal(err)
	}
	check := httptest.NewRequest(http.MethodGet, u.RequestURI(), nil)
	check.Host = u.Host
	check.Header = http.Header{}
	for k, v := range client {
		if len(fa.AuthRequestHeaders) == 0 || slices.ContainsFunc(fa.AuthRequestHeaders, func(h string) bool { return strings.EqualFold(h, k) }) {
			check.Header[http.CanonicalHeaderKey(k)] = v
		}
	}
	if fa.TrustForwardHeader {
		t.Fatal("the model covers trustForwardHeader: false only")
	}
	check.Header.Set("X-Forwarded-For", "192.0.2.1")
	check.Header.Set("X-Forwarded-Method", method)
	check.Header.Set("X-Forwarded-Proto", "https")
	check.Header.Set("X-Forwarded-Host", "meet.example.com")
	check.Header.Set("X-Forwarded-Uri", target)
	w := httptest.NewRecorder()
	gatehouse.ServeHTTP(w, check)
	res := w.Result()
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return w, nil
	}
	upstream := client.Clone()
	for _, name := range fa.AuthResponseHeaders {
		key := http.CanonicalHeaderKey(name)
		upstream.Del(key)
		if v := res.Header[key]; len(v) > 0 {
			upstream[key] = slices.Clone(v)
		}
	}
	return w, upstream
}

// TestTraefikExamples checks both Traefik examples' settings and runs the
// handler behind the model of forwardAuth they configure.
func TestTraefikExamples(t *testing.T) {
	h := New(newAuthorizer(t, testDirectory()), Options{})
	token := signToken(t, nil)
	for i, fa := range traefikExamples(t) {
		u, err := url.Parse(fa.Address)
		if err != nil || u.Path != DefaultPathPrefix || u.Port() != "8080" || u.RawQuery != "" {
			t.Errorf("example %d: address %q is not gatehouse's :8080%s", i, fa.Address, DefaultPathPrefix)
		}
		if fa.TrustForwardHeader {
			t.Errorf("example %d: trustForwardHeader must be false", i)
		}
		var names []string
		for _, n := range fa.AuthResponseHeaders {
			names = append(names, strings.ToLower(n))
		}
		if !slices.Equal(names, identityNames) {
			t.Errorf("example %d: authResponseHeaders %v", i, fa.AuthResponseHeaders)
		}
		if !slices.Contains(fa.AuthRequestHeaders, "Authorization") {
			t.Errorf("example %d: authRequestHeaders %v lacks Authorization", i, fa.AuthRequestHeaders)
		}

		_, up := traefikForward(t, fa, h, "GET", roomsPath, merge(bearer(token), forged))
		if up == nil || up.Get("X-Auth-User-Id") != testUserID || len(up.Values("X-Auth-User-Id")) != 1 {
			t.Errorf("example %d allowed: upstream %v", i, up)
		}
		_, up = traefikForward(t, fa, h, "POST", tokenPath, forged)
		if up == nil || len(up.Values("X-Auth-User-Id"))+len(up.Values("X-Auth-Scope")) != 0 {
			t.Errorf("example %d public: upstream %v", i, up)
		}
		w, up := traefikForward(t, fa, h, "GET", roomsPath, merge(nginxHeaders("POST", tokenPath), http.Header{"X-Original-Url": {"http://h" + tokenPath}}))
		if up != nil || w.Code != 401 || w.Header().Get("Www-Authenticate") != "Bearer" {
			t.Errorf("example %d spoofed X-Original-*: %d", i, w.Code)
		}
		w, up = traefikForward(t, fa, h, "POST", roomsPath, bearer(token))
		if up != nil || w.Code != 403 || detail(t, w.Body.Bytes()) != "Insufficient permissions. Required scope: rooms:create" {
			t.Errorf("example %d missing scope: %d %s", i, w.Code, w.Body)
		}
	}
}

// TestExampleReadmes: every example directory explains which headers the
// proxy sends and that they must come from the proxy.
func TestExampleReadmes(t *testing.T) {
	// examples/envoy is shared with the gRPC example: its http_service
	// notes are in http-service.md.
	for _, doc := range []string{"nginx/README.md", "ingress-nginx/README.md", "caddy/README.md", "traefik/README.md", "envoy/http-service.md"} {
		b, err := os.ReadFile(filepath.Join(examplesDir, doc))
		if err != nil {
			t.Errorf("%s: %v", doc, err)
			continue
		}
		dir := doc
		s := string(b)
		for _, want := range []string{"X-Auth-User-Id", "never from the client"} {
			if !strings.Contains(s, want) {
				t.Errorf("%s does not mention %q", dir, want)
			}
		}
	}
}
