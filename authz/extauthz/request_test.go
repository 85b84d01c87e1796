package extauthz

import (
	"maps"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/gatehouse-authz/gatehouse/authz"
)

func TestRequestFromCheckFixtures(t *testing.T) {
	cases := map[string]authz.Request{
		"front_envoy_http1_get.json": {
			Method: "GET", Path: "/v1/orders?limit=10", Host: "api.example.com:8000",
			Authorization: "Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.e30.sig",
		},
		"istio_sidecar_http1_post.json": {
			Method: "POST", Path: "/v1/orders", Host: "orders.example.com",
			Authorization: "Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.e30.sig",
			TraceParent:   "00-166767fd8d29ab65f9095a92b59d98af-bcfb3ec3fcdf2fd8-01",
		},
		// gRPC A92 leaves host unset: it comes from :authority in header_map,
		// the credential from a raw_value.
		"grpc_a92_style_header_map.json": {
			Method: "POST", Path: "/orders.v1.Orders/List", Host: "orders:50051",
			Authorization: "Bearer abc",
		},
	}
	names := fixtureNames(t)
	if len(names) != len(cases) {
		t.Errorf("fixtures %v: update this table", names)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			want, known := cases[name]
			if !known {
				t.Skip("no expectation for this fixture")
			}
			got, ok := RequestFromCheck(loadFixture(t, name))
			if !ok {
				t.Fatal("ok = false")
			}
			if !requestEqual(got, want) {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}
}

func requestEqual(a, b authz.Request) bool {
	return a.Method == b.Method && a.Path == b.Path && a.Host == b.Host &&
		a.Authorization == b.Authorization && maps.Equal(a.ContextExtensions, b.ContextExtensions) &&
		a.TraceParent == b.TraceParent && a.TraceState == b.TraceState
}

func httpRequest(h *authv3.AttributeContext_HttpRequest) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: h},
	}}
}

func raw(k, v string) *corev3.HeaderValue { return &corev3.HeaderValue{Key: k, RawValue: []byte(v)} }

func TestRequestFromCheck(t *testing.T) {
	cases := []struct {
		name string
		req  *authv3.CheckRequest
		want authz.Request
	}{
		{
			name: "headers map wins over header_map",
			req: httpRequest(&authv3.AttributeContext_HttpRequest{
				Method: "GET", Path: "/p", Host: "h",
				Headers:   map[string]string{"authorization": "Bearer from-map"},
				HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{raw("authorization", "Bearer from-raw")}},
			}),
			want: authz.Request{Method: "GET", Path: "/p", Host: "h", Authorization: "Bearer from-map"},
		},
		{
			name: "header_map when the map lacks it, key case-insensitive",
			req: httpRequest(&authv3.AttributeContext_HttpRequest{
				Method: "GET", Path: "/p", Host: "h",
				Headers:   map[string]string{"accept": "*/*"},
				HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{raw("AuThOrIzAtIoN", "Bearer raw")}},
			}),
			want: authz.Request{Method: "GET", Path: "/p", Host: "h", Authorization: "Bearer raw"},
		},
		{
			name: "value used when raw_value is absent",
			req: httpRequest(&authv3.AttributeContext_HttpRequest{
				Method: "GET", Path: "/p", Host: "h",
				HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: "authorization", Value: "Bearer v"}}},
			}),
			want: authz.Request{Method: "GET", Path: "/p", Host: "h", Authorization: "Bearer v"},
		},
		{
			name: "raw bytes passed through, not UTF-8",
			req: httpRequest(&authv3.AttributeContext_HttpRequest{
				Method: "GET", Path: "/p", Host: "h",
				HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{raw("authorization", "Bearer \xc3\x28\xff")}},
			}),
			want: authz.Request{Method: "GET", Path: "/p", Host: "h", Authorization: "Bearer \xc3\x28\xff"},
		},
		{
			name: "duplicate raw headers joined like the headers map",
			req: httpRequest(&authv3.AttributeContext_HttpRequest{
				Method: "GET", Path: "/p", Host: "h",
				HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
					raw("authorization", "Bearer a"), nil, raw("x", "y"), raw("Authorization", "Bearer b"),
				}},
			}),
			want: authz.Request{Method: "GET", Path: "/p", Host: "h", Authorization: "Bearer a,Bearer b"},
		},
		{
			name: "Unicode case folding does not match a header name",
			req: httpRequest(&authv3.AttributeContext_HttpRequest{
				Method: "GET", Path: "/p", Host: "h",
				// U+212A KELVIN SIGN folds to "k" in Unicode, not in ASCII.
				HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{raw("authorization\u212a", "Bearer x")}},
			}),
			want: authz.Request{Method: "GET", Path: "/p", Host: "h"},
		},
		{
			name: "own fields win over pseudo-headers",
			req: httpRequest(&authv3.AttributeContext_HttpRequest{
				Method: "GET", Path: "/real", Host: "real",
				Headers: map[string]string{":method": "POST", ":path": "/pseudo", ":authority": "pseudo"},
			}),
			want: authz.Request{Method: "GET", Path: "/real", Host: "real"},
		},
		{
			name: "pseudo-headers fill empty fields",
			req: httpRequest(&authv3.AttributeContext_HttpRequest{
				Headers: map[string]string{":method": "PUT", ":path": "/x?q", ":authority": "a:1"},
			}),
			want: authz.Request{Method: "PUT", Path: "/x?q", Host: "a:1"},
		},
		{
			name: "context extensions",
			req: &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
				Request:           &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "GET"}},
				ContextExtensions: map[string]string{"route": "rooms", "scope": "rooms:read"},
			}},
			want: authz.Request{Method: "GET", ContextExtensions: map[string]string{"route": "rooms", "scope": "rooms:read"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := RequestFromCheck(tc.req)
			if !ok {
				t.Fatal("ok = false")
			}
			if !requestEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestRequestFromCheckNoHTTP(t *testing.T) {
	for name, req := range map[string]*authv3.CheckRequest{
		"nil":        nil,
		"empty":      {},
		"no request": {Attributes: &authv3.AttributeContext{ContextExtensions: map[string]string{"a": "b"}}},
		"no http":    {Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{}}},
	} {
		if r, ok := RequestFromCheck(req); ok || !requestEqual(r, authz.Request{}) {
			t.Errorf("%s: got %+v, %v; want zero, false", name, r, ok)
		}
	}
}

func TestRequestID(t *testing.T) {
	cases := []struct {
		h    *authv3.AttributeContext_HttpRequest
		want string
	}{
		{&authv3.AttributeContext_HttpRequest{Id: "42", Headers: map[string]string{"x-request-id": "rid"}}, "rid"},
		{&authv3.AttributeContext_HttpRequest{Id: "42"}, "42"},
		{&authv3.AttributeContext_HttpRequest{Id: "42", HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{raw("X-Request-Id", "raw-rid")}}}, "raw-rid"},
		{&authv3.AttributeContext_HttpRequest{Id: "42", Headers: map[string]string{"x-request-id": ""}}, "42"},
	}
	for _, tc := range cases {
		if got := requestID(tc.h); got != tc.want {
			t.Errorf("requestID(%v) = %q, want %q", tc.h, got, tc.want)
		}
	}
}
