package workload

import (
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/gatehouse-authz/gatehouse/authz"
)

func TestStatusCode(t *testing.T) {
	for _, tc := range []struct {
		name string
		resp *authv3.CheckResponse
		want int32
	}{
		{"empty", &authv3.CheckResponse{}, 0},
		{"ok", &authv3.CheckResponse{Status: &rpcstatus.Status{}}, 0},
		{"deny", &authv3.CheckResponse{Status: &rpcstatus.Status{Code: 16, Message: "x"},
			HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{Body: "b"}}}, 16},
	} {
		b, err := proto.Marshal(tc.resp)
		if err != nil {
			t.Fatal(err)
		}
		var got StatusCode
		if err := (RawCodec{}).Unmarshal(b, &got); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got.Code != tc.want {
			t.Errorf("%s: code %d, want %d", tc.name, got.Code, tc.want)
		}
	}
	var got StatusCode
	if err := (RawCodec{}).Unmarshal([]byte{0x0a, 0x05, 0x08}, &got); err == nil {
		t.Error("truncated message: no error")
	}
}

func TestBuild(t *testing.T) {
	cfg := authz.JWTConfig{Secret: []byte("0123456789abcdef0123456789abcdef"), Algorithm: "HS256", Issuer: "lasuite-meet"}
	for name, n := range map[string]int{Hot: 1, Distinct: 50, Invalid: 1000, Istio: 1} {
		w, err := Build(name, cfg, 50, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if len(w.Requests) != n {
			t.Errorf("%s: %d requests, want %d", name, len(w.Requests), n)
		}
		var req authv3.CheckRequest
		if err := proto.Unmarshal(w.Requests[0], &req); err != nil {
			t.Fatal(err)
		}
		if req.GetAttributes().GetRequest().GetHttp().GetHeaders()["authorization"] == "" {
			t.Errorf("%s: no authorization header", name)
		}
	}
	if _, err := Build("nope", cfg, 1, time.Hour); err == nil {
		t.Error("unknown scenario: no error")
	}
}

// TestMeshCheckRequest: the istio scenario's request is the hot one with
// what a mesh sidecar adds, and bigger by about the size of a certificate.
func TestMeshCheckRequest(t *testing.T) {
	cfg := authz.JWTConfig{Secret: []byte("0123456789abcdef0123456789abcdef"), Algorithm: "HS256", Issuer: "lasuite-meet"}
	hot, err := Build(Hot, cfg, 1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	mesh, err := Build(Istio, cfg, 1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var hr, mr authv3.CheckRequest
	if err := proto.Unmarshal(hot.Requests[0], &hr); err != nil {
		t.Fatal(err)
	}
	if err := proto.Unmarshal(mesh.Requests[0], &mr); err != nil {
		t.Fatal(err)
	}
	a := mr.GetAttributes()
	if got, want := a.GetRequest().GetHttp().GetHeaders()["authorization"], hr.GetAttributes().GetRequest().GetHttp().GetHeaders()["authorization"]; got != want {
		t.Errorf("authorization %q, want the hot scenario's %q", got, want)
	}
	cert := a.GetSource().GetCertificate()
	if !strings.HasPrefix(cert, "-----BEGIN%20CERTIFICATE-----%0A") || len(cert) < 1400 || len(cert) > 1700 || strings.ContainsAny(cert, "\n +/=") {
		t.Errorf("peer certificate of %d bytes, not URL-encoded PEM of ~1.5 KB: %.80s", len(cert), cert)
	}
	if !strings.HasPrefix(a.GetSource().GetPrincipal(), "spiffe://cluster.local/ns/") || !strings.HasPrefix(a.GetDestination().GetPrincipal(), "spiffe://cluster.local/ns/") {
		t.Errorf("principals %q, %q", a.GetSource().GetPrincipal(), a.GetDestination().GetPrincipal())
	}
	if a.GetMetadataContext().GetFilterMetadata()["istio_authn"] == nil {
		t.Error("no istio_authn filter metadata")
	}
	if n := len(a.GetRequest().GetHttp().GetHeaders()); n < 25 {
		t.Errorf("%d headers, want the hot request's 16 and a dozen more", n)
	}
	if len(mesh.Requests[0]) < len(hot.Requests[0])+1800 {
		t.Errorf("mesh request %d bytes, hot %d", len(mesh.Requests[0]), len(hot.Requests[0]))
	}
	if mesh.WantCode != 0 {
		t.Errorf("istio is a hot path: want code %d", mesh.WantCode)
	}
}
