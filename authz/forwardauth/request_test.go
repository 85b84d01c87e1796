package forwardauth

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatehouse-authz/gatehouse/authz"
)

// TestOriginalRequest checks, mode by mode, which method, path and host the
// Decider is asked about, through the handler.
func TestOriginalRequest(t *testing.T) {
	auth := http.Header{"Authorization": {"Bearer abc"}}
	cases := []struct {
		name   string
		method string
		target string
		header http.Header
		want   authz.Request
		mode   mode
	}{
		{
			name:   "envoy http_service: prefix stripped, query kept, Host kept",
			method: http.MethodPost, target: "/check/external-api/v1.0/rooms/?x=1&y=%2F",
			header: auth,
			want:   authz.Request{Method: "POST", Path: "/external-api/v1.0/rooms/?x=1&y=%2F", Host: "meet.example.com", Authorization: "Bearer abc"},
			mode:   modeEnvoy,
		},
		{
			name:   "envoy http_service: root path",
			method: http.MethodGet, target: "/check/",
			want: authz.Request{Method: "GET", Path: "/", Host: "meet.example.com"},
			mode: modeEnvoy,
		},
		{
			name:   "envoy http_service: raw path passed byte for byte",
			method: http.MethodDelete, target: "/check/external-api/v1.0/rooms/a%2Fb/../",
			want: authz.Request{Method: "DELETE", Path: "/external-api/v1.0/rooms/a%2Fb/../", Host: "meet.example.com"},
			mode: modeEnvoy,
		},
		{
			name:   "envoy http_service: the prefix appears again in the original path",
			method: http.MethodGet, target: "/check/check/x",
			want: authz.Request{Method: "GET", Path: "/check/x", Host: "meet.example.com"},
			mode: modeEnvoy,
		},
		{
			name:   "nginx auth_request: X-Original-Method and X-Original-URI",
			method: http.MethodGet, target: "/check",
			header: merge(auth, nginxHeaders("POST", "/external-api/v1.0/rooms/?a=b")),
			want:   authz.Request{Method: "POST", Path: "/external-api/v1.0/rooms/?a=b", Host: "meet.example.com", Authorization: "Bearer abc"},
			mode:   modeOriginal,
		},
		{
			name:   "ingress-nginx: X-Original-URL gives path and host",
			method: http.MethodGet, target: "/check",
			header: http.Header{"X-Original-Method": {"PUT"}, "X-Original-Url": {"https://meet.example.com:8443/external-api/v1.0/rooms/?q"}},
			want:   authz.Request{Method: "PUT", Path: "/external-api/v1.0/rooms/?q", Host: "meet.example.com:8443"},
			mode:   modeOriginal,
		},
		{
			name:   "ingress-nginx with auth-method: URI and URL agree",
			method: http.MethodGet, target: "/check",
			header: http.Header{"X-Original-Method": {"GET"}, "X-Original-Uri": {"/a?b"}, "X-Original-Url": {"http://h/a?b"}},
			want:   authz.Request{Method: "GET", Path: "/a?b", Host: "h"},
			mode:   modeOriginal,
		},
		{
			name:   "ingress-nginx: HTTP/1.0 without Host gives an empty authority",
			method: http.MethodGet, target: "/check",
			header: http.Header{"X-Original-Method": {"GET"}, "X-Original-Url": {"http:///a"}},
			want:   authz.Request{Method: "GET", Path: "/a", Host: ""},
			mode:   modeOriginal,
		},
		{
			name:   "traefik / caddy: X-Forwarded-*",
			method: http.MethodGet, target: "/check",
			header: merge(auth, traefikHeaders("HEAD", "/external-api/v1.0/rooms/x/")),
			want:   authz.Request{Method: "HEAD", Path: "/external-api/v1.0/rooms/x/", Host: "meet.example.com", Authorization: "Bearer abc"},
			mode:   modeForwarded,
		},
		{
			name:   "forwarded without X-Forwarded-Host uses Host",
			method: http.MethodGet, target: "/check?from=caddy",
			header: http.Header{"X-Forwarded-Method": {"GET"}, "X-Forwarded-Uri": {"/x"}},
			want:   authz.Request{Method: "GET", Path: "/x", Host: "meet.example.com"},
			mode:   modeForwarded,
		},
		{
			name:   "X-Forwarded-Host and -Proto alone do not make a mode, so Envoy mode keeps them",
			method: http.MethodGet, target: "/check/x",
			header: http.Header{"X-Forwarded-Host": {"evil.example"}, "X-Forwarded-Proto": {"https"}},
			want:   authz.Request{Method: "GET", Path: "/x", Host: "meet.example.com"},
			mode:   modeEnvoy,
		},
		{
			name:   "W3C trace context passed for tracing",
			method: http.MethodGet, target: "/check",
			header: merge(traefikHeaders("GET", "/x"), http.Header{
				"Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}, "Tracestate": {"v=1"},
			}),
			want: authz.Request{Method: "GET", Path: "/x", Host: "meet.example.com",
				TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", TraceState: "v=1"},
			mode: modeForwarded,
		},
		{
			name:   "two Authorization headers are joined, never one credential",
			method: http.MethodGet, target: "/check/x",
			header: http.Header{"Authorization": {"Bearer a", "Bearer b"}},
			want:   authz.Request{Method: "GET", Path: "/x", Host: "meet.example.com", Authorization: "Bearer a,Bearer b"},
			mode:   modeEnvoy,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := &recorder{d: authz.Decision{Result: authz.Allow, Status: http.StatusOK}}
			w := check(New(rec, Options{}), c.method, c.target, c.header)
			if w.Code != http.StatusOK {
				t.Fatalf("status %d, body %s", w.Code, w.Body)
			}
			reqs := rec.requests()
			if len(reqs) != 1 {
				t.Fatalf("Decider asked %d times", len(reqs))
			}
			if got := reqs[0]; got.Method != c.want.Method || got.Path != c.want.Path || got.Host != c.want.Host ||
				got.Authorization != c.want.Authorization || got.ContextExtensions != nil ||
				got.TraceParent != c.want.TraceParent || got.TraceState != c.want.TraceState {
				t.Errorf("Decider asked about\n %+v\nwant\n %+v", got, c.want)
			}

			r := httptest.NewRequest(c.method, c.target, nil)
			r.Host = "meet.example.com"
			for k, v := range c.header {
				r.Header[k] = v
			}
			if _, m, problem := original(r, DefaultPathPrefix); m != c.mode || problem != "" {
				t.Errorf("mode %v problem %q, want %v", m, problem, c.mode)
			}
		})
	}
}

// TestRefusedChecks: every check whose original request cannot be
// established unambiguously is a 403 without challenge, and the Decider is
// never asked.
func TestRefusedChecks(t *testing.T) {
	cases := []struct {
		name    string
		method  string
		target  string
		header  http.Header
		problem string
	}{
		{"path outside the prefix", "GET", "/other", nil, problemOutsidePrefix},
		{"prefix as a path prefix of another word", "GET", "/checkout/x", nil, problemOutsidePrefix},
		{"healthz", "GET", "/healthz", nil, problemOutsidePrefix},
		{"readyz", "GET", "/readyz", nil, problemOutsidePrefix},
		{"metrics", "GET", "/metrics", nil, problemOutsidePrefix},
		{"root", "GET", "/", nil, problemOutsidePrefix},
		{"asterisk", "OPTIONS", "*", nil, problemAsterisk},
		{"bare prefix without headers", "GET", "/check", nil, problemNoOriginal},
		{"bare prefix with only X-Forwarded-Host", "GET", "/check", http.Header{"X-Forwarded-Host": {"h"}}, problemNoOriginal},
		{"both header families (client X-Original-URI through Traefik)", "GET", "/check",
			merge(traefikHeaders("GET", "/external-api/v1.0/rooms/"), nginxHeaders("POST", tokenPath)), problemMixed},
		{"only X-Original-Method and X-Forwarded-Uri", "GET", "/check",
			http.Header{"X-Original-Method": {"GET"}, "X-Forwarded-Uri": {"/x"}}, problemMixed},
		{"X-Original-URI on an Envoy path (client header let through)", "GET", "/check/external-api/v1.0/rooms/",
			nginxHeaders("POST", tokenPath), problemHeadersUnderPath},
		{"X-Forwarded-Uri on an Envoy path (Traefik address with trailing slash)", "GET", "/check/",
			traefikHeaders("GET", "/external-api/v1.0/rooms/"), problemHeadersUnderPath},
		{"double slash after the prefix (path_prefix: /check/)", "GET", "/check//external-api/v1.0/rooms/", nil, problemDoubleSlash},
		{"repeated X-Original-URI", "GET", "/check",
			http.Header{"X-Original-Method": {"GET"}, "X-Original-Uri": {tokenPath, roomsPath}}, problemRepeated},
		{"repeated X-Original-Method", "GET", "/check",
			http.Header{"X-Original-Method": {"POST", "GET"}, "X-Original-Uri": {tokenPath}}, problemRepeated},
		{"repeated X-Forwarded-Uri", "GET", "/check",
			http.Header{"X-Forwarded-Method": {"GET"}, "X-Forwarded-Uri": {tokenPath, roomsPath}}, problemRepeated},
		{"repeated X-Original-URL", "GET", "/check",
			http.Header{"X-Original-Method": {"GET"}, "X-Original-Url": {"http://h" + tokenPath, "http://h" + roomsPath}}, problemRepeated},
		{"no X-Original-Method", "GET", "/check", http.Header{"X-Original-Uri": {roomsPath}}, problemNoMethod},
		{"empty X-Forwarded-Method", "GET", "/check", http.Header{"X-Forwarded-Method": {""}, "X-Forwarded-Uri": {roomsPath}}, problemNoMethod},
		{"no original URI", "GET", "/check", http.Header{"X-Original-Method": {"GET"}}, problemNoURI},
		{"no forwarded URI", "GET", "/check", http.Header{"X-Forwarded-Method": {"GET"}}, problemNoURI},
		{"absolute X-Original-URI", "GET", "/check", nginxHeaders("GET", "http://h/external-api/"), problemBadURI},
		{"empty X-Forwarded-Uri", "GET", "/check", traefikHeaders("GET", ""), problemBadURI},
		{"asterisk X-Forwarded-Uri", "GET", "/check", traefikHeaders("OPTIONS", "*"), problemBadURI},
		// nginx accepts "Host: a?b": $scheme://$http_host$request_uri is then
		// http://a?b/real/path, whose path a lenient parser reads as "".
		{"X-Original-URL host with ?", "GET", "/check",
			http.Header{"X-Original-Method": {"POST"}, "X-Original-Url": {"http://a?b" + roomsPath}}, problemBadURL},
		{"X-Original-URL host with #", "GET", "/check",
			http.Header{"X-Original-Method": {"POST"}, "X-Original-Url": {"http://a#b" + roomsPath}}, problemBadURL},
		{"X-Original-URL without path", "GET", "/check",
			http.Header{"X-Original-Method": {"GET"}, "X-Original-Url": {"http://host"}}, problemBadURL},
		{"X-Original-URL without scheme", "GET", "/check",
			http.Header{"X-Original-Method": {"GET"}, "X-Original-Url": {"//host/x"}}, problemBadURL},
		{"X-Original-URL with a bad scheme", "GET", "/check",
			http.Header{"X-Original-Method": {"GET"}, "X-Original-Url": {"1http://host/x"}}, problemBadURL},
		{"X-Original-URI and -URL disagree (client URI through ingress-nginx)", "GET", "/check",
			http.Header{"X-Original-Method": {"POST"}, "X-Original-Uri": {tokenPath}, "X-Original-Url": {"https://h" + roomsPath}}, problemURIMismatch},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := &recorder{d: authz.Decision{Result: authz.Allow, Status: http.StatusOK}}
			var logs logBuffer
			h := New(rec, Options{Logger: newTestLogger(&logs)})
			w := check(h, c.method, c.target, merge(c.header, bearer("tok")))
			if w.Code != http.StatusForbidden {
				t.Fatalf("status %d, want 403", w.Code)
			}
			if got := detail(t, w.Body.Bytes()); got != "Insufficient permissions." {
				t.Errorf("detail %q", got)
			}
			if got := w.Header().Get("Www-Authenticate"); got != "" {
				t.Errorf("WWW-Authenticate %q on a refused check", got)
			}
			if len(rec.requests()) != 0 {
				t.Errorf("Decider was asked about a refused check")
			}
			lines := logs.Lines(t)
			if len(lines) != 1 {
				t.Fatalf("%d log lines", len(lines))
			}
			if lines[0]["problem"] != c.problem || lines[0]["reason"] != string(authz.ReasonBadRequest) {
				t.Errorf("log problem %q reason %q, want %q bad_request", lines[0]["problem"], lines[0]["reason"], c.problem)
			}
		})
	}
}

// TestRootPrefix: with PathPrefix "/" every path is an Envoy http_service
// check (no path_prefix in Envoy), the header modes are off, and ops paths
// are checked like any other path.
func TestRootPrefix(t *testing.T) {
	rec := &recorder{d: authz.Decision{Result: authz.Allow, Status: http.StatusOK}}
	h := New(rec, Options{PathPrefix: "/"})
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/check", "//x"} {
		if w := check(h, "GET", p, nil); w.Code != http.StatusOK {
			t.Errorf("%s: status %d", p, w.Code)
		}
	}
	var paths []string
	for _, r := range rec.requests() {
		paths = append(paths, r.Path)
	}
	if got := strings.Join(paths, " "); got != "/healthz /readyz /metrics /check //x" {
		t.Errorf("Decider asked about %s", got)
	}
	if w := check(h, "GET", "/check", nginxHeaders("GET", "/x")); w.Code != http.StatusForbidden {
		t.Errorf("header mode under the root prefix: status %d, want 403", w.Code)
	}
}

// TestCustomPrefix: another prefix, with and without trailing slash.
func TestCustomPrefix(t *testing.T) {
	for _, p := range []string{"/authz/v1", "/authz/v1/"} {
		rec := &recorder{d: authz.Decision{Result: authz.Allow, Status: http.StatusOK}}
		h := New(rec, Options{PathPrefix: p})
		if w := check(h, "GET", "/authz/v1/x", nil); w.Code != http.StatusOK {
			t.Errorf("%s: Envoy mode status %d", p, w.Code)
		}
		if w := check(h, "GET", "/authz/v1", traefikHeaders("GET", "/y")); w.Code != http.StatusOK {
			t.Errorf("%s: header mode status %d", p, w.Code)
		}
		if w := check(h, "GET", "/check/x", nil); w.Code != http.StatusForbidden {
			t.Errorf("%s: default prefix still accepted: %d", p, w.Code)
		}
		var paths []string
		for _, r := range rec.requests() {
			paths = append(paths, r.Path)
		}
		if got := strings.Join(paths, " "); got != "/x /y" {
			t.Errorf("%s: Decider asked about %s", p, got)
		}
	}
}

func TestCleanPathPrefix(t *testing.T) {
	ok := map[string]string{"": "/check", "/": "", "/check": "/check", "/check/": "/check", "/a/b-c_d.e~": "/a/b-c_d.e~"}
	for in, want := range ok {
		if got, err := CleanPathPrefix(in); err != nil || got != want {
			t.Errorf("CleanPathPrefix(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"check", "/a//b", "/a/./b", "/a/..", "/a?b", "/a#b", "/a b", "/a%2Fb", "/é", "/a\n", "//"} {
		if got, err := CleanPathPrefix(bad); err == nil {
			t.Errorf("CleanPathPrefix(%q) = %q, want an error", bad, got)
		}
	}
}

func TestSplitURL(t *testing.T) {
	cases := []struct{ in, host, target string }{
		{"http://h/p", "h", "/p"},
		{"https://h:8443/p?q#f", "h:8443", "/p?q#f"},
		{"HTTP://h/", "h", "/"},
		{"svn+ssh://h/x", "h", "/x"},
		{"http:///x", "", "/x"},
	}
	for _, c := range cases {
		host, target, ok := splitURL(c.in)
		if !ok || host != c.host || target != c.target {
			t.Errorf("splitURL(%q) = %q %q %v", c.in, host, target, ok)
		}
	}
	for _, bad := range []string{"", "h/p", "://h/p", "http:/h/p", "http://h", "http://h?x/p", "http://h#x/p", "ht tp://h/p", "1a://h/p"} {
		if _, _, ok := splitURL(bad); ok {
			t.Errorf("splitURL(%q) accepted", bad)
		}
	}
}

// TestOriginalDoesNotAllocate: reading the original request is on every
// check and must not allocate (one Authorization header).
func TestOriginalDoesNotAllocate(t *testing.T) {
	reqs := []*http.Request{
		httptest.NewRequest("GET", "/check/external-api/v1.0/rooms/?x=1", nil),
		httptest.NewRequest("GET", "/check", nil),
		httptest.NewRequest("GET", "/check", nil),
	}
	reqs[1].Header = merge(nginxHeaders("GET", roomsPath), bearer("x"))
	reqs[2].Header = merge(traefikHeaders("GET", roomsPath), bearer("x"))
	reqs[0].Header = bearer("x")
	for _, r := range reqs {
		if n := testing.AllocsPerRun(100, func() {
			if _, _, problem := original(r, DefaultPathPrefix); problem != "" {
				t.Fatal(problem)
			}
		}); n != 0 {
			t.Errorf("%s %v: %v allocations", r.RequestURI, r.Header, n)
		}
	}
}
