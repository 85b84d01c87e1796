package checkwire_test

import (
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gatehouse-authz/gatehouse/authz/extauthz"
	"github.com/gatehouse-authz/gatehouse/authz/extauthz/checkwire"
)

// loadRequestSize is the size of the CheckRequest `make load` sends: the
// Istio sidecar fixture carrying a Meet delegation token.
const loadRequestSize = 1247

// benchRequests are the inputs of BenchmarkDecode: the smallest fixture,
// the request of `make load`, and a mesh-shaped request as an Istio sidecar
// with mTLS and metadata exchange sends it.
func benchRequests(b *testing.B) []struct {
	name string
	in   []byte
} {
	front := fixtures(b)["front_envoy_http1_get.json"]
	load := loadFixture(b, "istio_sidecar_http1_post.json")
	// A token-sized credential, grown until the request has the size of
	// make load's.
	for n := 0; ; n++ {
		load.Attributes.Request.Http.Headers["authorization"] = "Bearer " + strings.Repeat("t", n)
		if size := proto.Size(load); size >= loadRequestSize {
			if size != loadRequestSize {
				b.Fatalf("cannot make a %d-byte request (got %d)", loadRequestSize, size)
			}
			break
		}
	}
	return []struct {
		name string
		in   []byte
	}{
		{"front_envoy", front},
		{"istio_load", marshal(b, load)},
		{"istio_mesh", marshal(b, meshRequest(b, load))},
	}
}

// meshRequest is req as a sidecar in an mTLS mesh sends it: peer
// certificates and labels, the TLS SNI, and the metadata of filters before
// ext_authz (Istio's peer metadata and a JWT filter's payload).
func meshRequest(b *testing.B, req *authv3.CheckRequest) *authv3.CheckRequest {
	req = proto.Clone(req).(*authv3.CheckRequest)
	cert := "-----BEGIN%20CERTIFICATE-----%0A" + strings.Repeat("MIIDazCCAlOgAwIBAgIUJ2n3b8wq", 40) + "%0A-----END%20CERTIFICATE-----%0A"
	labels := map[string]string{
		"app": "orders", "version": "v1", "security.istio.io/tlsMode": "istio",
		"service.istio.io/canonical-name": "orders", "service.istio.io/canonical-revision": "v1",
	}
	a := req.Attributes
	a.Source.Certificate, a.Source.Labels = cert, labels
	a.Destination.Certificate, a.Destination.Labels = cert, labels
	a.TlsSession = &authv3.AttributeContext_TLSSession{Sni: "outbound_.8080_._.orders.default.svc.cluster.local"}
	peer, err := structpb.NewStruct(map[string]any{
		"CLUSTER_ID": "Kubernetes", "NAMESPACE": "istio-system", "WORKLOAD_NAME": "istio-ingressgateway",
		"LABELS":            map[string]any{"app": "istio-ingressgateway", "istio": "ingressgateway"},
		"PLATFORM_METADATA": map[string]any{"gcp_project": "p", "gcp_location": "europe-west1"},
	})
	if err != nil {
		b.Fatal(err)
	}
	jwt, err := structpb.NewStruct(map[string]any{
		"iss": "https://meet.example.com", "sub": "6f1c2f9e-3b7a-4c52-9d0e-1a2b3c4d5e6f",
		"aud": []any{"orders"}, "exp": 1.7e9, "scope": "rooms:list rooms:retrieve",
	})
	if err != nil {
		b.Fatal(err)
	}
	a.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		"istio.peer":                   peer,
		"envoy.filters.http.jwt_authn": jwt,
	}}
	a.RouteMetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		"istio": {Fields: map[string]*structpb.Value{"config": structpb.NewStringValue("/apis/networking.istio.io/v1/namespaces/default/virtual-service/orders")}},
	}}
	return req
}

// BenchmarkDecode compares reading a CheckRequest the standard way
// (proto.Unmarshal, then extauthz's conversion) with checkwire.
func BenchmarkDecode(b *testing.B) {
	for _, r := range benchRequests(b) {
		b.Run(r.name+"/proto", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(r.in)))
			for b.Loop() {
				req := new(authv3.CheckRequest)
				if err := proto.Unmarshal(r.in, req); err != nil {
					b.Fatal(err)
				}
				if c := extauthz.CheckFromRequest(req); !c.HTTP {
					b.Fatal("no http")
				}
			}
		})
		b.Run(r.name+"/checkwire", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(r.in)))
			for b.Loop() {
				c := new(checkwire.Check)
				if err := c.Unmarshal(r.in); err != nil || !c.HTTP {
					b.Fatal(err)
				}
			}
		})
	}
}
