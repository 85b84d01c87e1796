// Package workload builds the CheckRequests of gatehouse's load benchmark:
// the Istio sidecar request of authz/extauthz/testdata/checkrequests
// (istio_sidecar_http1_post.json) carrying a Meet delegation token, for the
// scenarios hot, distinct and invalid, and the same request as a sidecar in
// an mTLS mesh sends it for the istio scenario, pre-marshalled so that a
// client spends no CPU encoding them.
package workload

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gatehouse-authz/gatehouse/authz"
)

// Scenario names: the same valid token (user cached), valid tokens of many
// distinct users cycling, invalid tokens (garbage and bad signatures), and
// the hot path with the bigger request of a sidecar in an Istio mTLS mesh
// (MeshCheckRequest).
const (
	Hot      = "hot"
	Distinct = "distinct"
	Invalid  = "invalid"
	Istio    = "istio"
)

// ClientID and Scope are what the delegation tokens carry, like a
// Meet application's.
const (
	ClientID = "meet-bench-app"
	Scope    = "rooms:list rooms:retrieve"
)

// UserID returns the i-th seeded user id, a canonical lower-case UUID so the
// core looks it up as it is.
func UserID(i int) string {
	return fmt.Sprintf("%08x-0b1c-4d2e-8f30-%012x", i, i)
}

// Workload is the set of pre-marshalled CheckRequests a scenario cycles
// through, and the gRPC status code each must get back.
type Workload struct {
	Name     string
	Requests [][]byte
	WantCode int32
}

// CheckRequest returns the CheckRequest an Istio sidecar sends for an
// HTTP/1.1 POST (authz/extauthz/testdata/checkrequests/istio_sidecar_http1_post.json)
// with authorization set to auth.
func CheckRequest(auth string) *authv3.CheckRequest {
	sock := func(addr string, port uint32) *corev3.Address {
		return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: addr, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{
			Address:   sock("10.244.0.8", 49244),
			Principal: "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account",
		},
		Destination: &authv3.AttributeContext_Peer{
			Address:   sock("10.244.0.39", 8080),
			Principal: "spiffe://cluster.local/ns/default/sa/orders",
		},
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.New(time.Date(2026, 8, 22, 10, 15, 30, 525045000, time.UTC)),
			Http: &authv3.AttributeContext_HttpRequest{
				Id:     "8227617712332952062",
				Method: "POST",
				Headers: map[string]string{
					":authority":              "orders.example.com",
					":method":                 "POST",
					":path":                   "/v1/orders",
					":scheme":                 "http",
					"accept":                  "*/*",
					"authorization":           auth,
					"content-length":          "35",
					"content-type":            "application/json",
					"traceparent":             "00-166767fd8d29ab65f9095a92b59d98af-bcfb3ec3fcdf2fd8-01",
					"user-agent":              "python-requests/2.32.3",
					"x-envoy-attempt-count":   "1",
					"x-envoy-internal":        "true",
					"x-forwarded-client-cert": `By=spiffe://cluster.local/ns/default/sa/orders;Hash=d691631a;Subject="";URI=spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account`,
					"x-forwarded-for":         "10.244.0.1",
					"x-forwarded-proto":       "http",
					"x-request-id":            "67f2084d-440c-9b0c-9644-57cc88c9f165",
				},
				Path:     "/v1/orders",
				Host:     "orders.example.com",
				Scheme:   "http",
				Protocol: "HTTP/1.1",
			},
		},
	}}
}

// MeshCheckRequest returns CheckRequest(auth) as the sidecar of an Istio
// mTLS mesh sends it to a CUSTOM ext_authz provider: the source's peer
// certificate (Envoy's include_peer_certificate: URL-encoded PEM, about
// 1.5 KB), the metadata of filters before ext_authz (Istio's authn
// filter), and the headers a request picks up crossing an ingress gateway
// and a sidecar (B3 and W3C tracing, x-forwarded-*, x-envoy-*).
func MeshCheckRequest(auth string) *authv3.CheckRequest {
	req := CheckRequest(auth)
	a := req.Attributes
	a.Source.Certificate = peerCertificate()
	h := a.Request.Http
	for k, v := range map[string]string{
		"accept-encoding":          "gzip, deflate, br",
		"accept-language":          "fr-FR,fr;q=0.9,en;q=0.8",
		"baggage":                  "meet.room=standup-4f2a",
		"tracestate":               "rojo=00f067aa0ba902b7",
		"x-b3-parentspanid":        "bcfb3ec3fcdf2fd8",
		"x-b3-sampled":             "1",
		"x-b3-spanid":              "5c1e8f0a3d2b4c6e",
		"x-b3-traceid":             "166767fd8d29ab65f9095a92b59d98af",
		"x-envoy-external-address": "203.0.113.42",
		"x-forwarded-host":         "orders.example.com",
		"x-forwarded-port":         "443",
		"x-real-ip":                "203.0.113.42",
	} {
		h.Headers[k] = v
	}
	h.Headers["x-forwarded-for"] = "203.0.113.42, 10.244.0.1"
	h.Headers["x-forwarded-proto"] = "https"
	h.Headers["user-agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	authn, err := structpb.NewStruct(map[string]any{
		"source.principal": a.Source.Principal,
		"source.namespace": "istio-system",
		"source.user":      a.Source.Principal,
		"request.auth.claims": map[string]any{
			"iss": []any{"lasuite-meet"}, "client_id": []any{ClientID},
		},
	})
	if err != nil { // cannot happen: only strings, lists and maps
		panic(fmt.Sprintf("workload: %v", err))
	}
	a.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"istio_authn": authn}}
	return req
}

// peerCertificate is a URL-encoded PEM certificate of a workload's size,
// about 1.5 KB: 960 deterministic bytes in place of the DER, base64 in
// 64-column lines, escaped as Envoy's urlEncodedPemEncodedPeerCertificate
// escapes them (newline, space, '+', '/', '=').
func peerCertificate() string {
	const size = 960
	var der []byte
	for seed := sha256.Sum256([]byte("gatehouse mesh workload")); len(der) < size; seed = sha256.Sum256(seed[:]) {
		der = append(der, seed[:]...)
	}
	b64 := base64.StdEncoding.EncodeToString(der[:size])
	var pem strings.Builder
	pem.WriteString("-----BEGIN CERTIFICATE-----\n")
	for len(b64) > 64 {
		pem.WriteString(b64[:64] + "\n")
		b64 = b64[64:]
	}
	pem.WriteString(b64 + "\n-----END CERTIFICATE-----\n")
	return strings.NewReplacer("\n", "%0A", " ", "%20", "+", "%2B", "/", "%2F", "=", "%3D").Replace(pem.String())
}

// Marshal returns CheckRequest(auth), marshalled.
func Marshal(auth string) ([]byte, error) {
	return marshal(CheckRequest(auth))
}

// MarshalMesh returns MeshCheckRequest(auth), marshalled.
func MarshalMesh(auth string) ([]byte, error) {
	return marshal(MeshCheckRequest(auth))
}

func marshal(req *authv3.CheckRequest) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("marshal CheckRequest: %w", err)
	}
	return b, nil
}

// Token issues a Meet delegation token for user i, valid for ttl.
func Token(cfg authz.JWTConfig, i int, ttl time.Duration) (string, error) {
	t, err := authz.IssueToken(cfg, authz.TokenSpec{UserID: UserID(i), ClientID: ClientID, Scope: Scope, TTL: ttl})
	if err != nil {
		return "", fmt.Errorf("issue token: %w", err)
	}
	return t.AccessToken, nil
}

// Build prepares the requests of one scenario. users is how many
// seeded users the distinct scenario cycles through; ttl covers the run.
func Build(name string, cfg authz.JWTConfig, users int, ttl time.Duration) (*Workload, error) {
	w := &Workload{Name: name}
	var auths []string
	encode := Marshal
	switch name {
	case Istio:
		encode = MarshalMesh
		fallthrough
	case Hot:
		t, err := Token(cfg, 0, ttl)
		if err != nil {
			return nil, err
		}
		auths = []string{"Bearer " + t}
	case Distinct:
		for i := range users {
			t, err := Token(cfg, i, ttl)
			if err != nil {
				return nil, err
			}
			auths = append(auths, "Bearer "+t)
		}
	case Invalid:
		// Half garbage, half well-formed tokens signed with another key:
		// the two ways a forged credential looks. Neither may reach Redis.
		w.WantCode = 16 // UNAUTHENTICATED: a 401 deny
		other := cfg
		other.Secret = []byte("not-the-gatehouse-secret-0123456789abcdef")
		const n = 1000
		for i := range n {
			if i%2 == 0 {
				garbage := strings.Repeat(fmt.Sprintf("garbage%04d", i), 20)
				auths = append(auths, "Bearer "+garbage[:200])
				continue
			}
			t, err := Token(other, i, ttl)
			if err != nil {
				return nil, err
			}
			auths = append(auths, "Bearer "+t)
		}
	default:
		return nil, fmt.Errorf("unknown scenario %q (want %s, %s, %s or %s)", name, Hot, Distinct, Invalid, Istio)
	}
	for _, a := range auths {
		b, err := encode(a)
		if err != nil {
			return nil, err
		}
		w.Requests = append(w.Requests, b)
	}
	return w, nil
}

// RawCodec sends pre-marshalled requests ([]byte) as they are. It decodes a
// response into a *StatusCode by reading only CheckResponse.status.code, so
// that a load client checks every answer while spending almost no CPU on it
// (it shares the cores with the server under test), and into any other
// proto.Message in full. Its name is "proto", so the server sees an ordinary
// application/grpc+proto call. Use it with grpc.ForceCodec.
type RawCodec struct{}

// StatusCode receives CheckResponse.status.code through RawCodec.
type StatusCode struct{ Code int32 }

// Name implements encoding.Codec.
func (RawCodec) Name() string { return "proto" }

// Marshal implements encoding.Codec; v must be a []byte.
func (RawCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.([]byte)
	if !ok {
		return nil, fmt.Errorf("workload.RawCodec: marshal %T, want []byte", v)
	}
	return b, nil
}

// Unmarshal implements encoding.Codec; v must be a *StatusCode or a
// proto.Message.
func (RawCodec) Unmarshal(data []byte, v any) error {
	switch m := v.(type) {
	case *StatusCode:
		code, err := statusCode(data)
		if err != nil {
			return fmt.Errorf("workload.RawCodec: %w", err)
		}
		m.Code = code
		return nil
	case proto.Message:
		return proto.Unmarshal(data, m)
	default:
		return fmt.Errorf("workload.RawCodec: unmarshal into %T", v)
	}
}

// statusCode reads field 1 (status, a google.rpc.Status) of a CheckResponse
// and its field 1 (code). An absent status or code is 0 (OK), as in proto3.
func statusCode(b []byte) (int32, error) {
	st, err := field(b, 1, protowire.BytesType)
	if err != nil || st == nil {
		return 0, err
	}
	c, err := field(st, 1, protowire.VarintType)
	if err != nil || c == nil {
		return 0, err
	}
	v, n := protowire.ConsumeVarint(c)
	if n < 0 {
		return 0, protowire.ParseError(n)
	}
	return int32(v), nil
}

// field returns the last occurrence of field num of type typ in the message
// b: for a varint, its encoding; for bytes, the contents. nil when absent.
func field(b []byte, num protowire.Number, typ protowire.Type) ([]byte, error) {
	var found []byte
	for len(b) > 0 {
		n, t, l := protowire.ConsumeTag(b)
		if l < 0 {
			return nil, protowire.ParseError(l)
		}
		b = b[l:]
		m := protowire.ConsumeFieldValue(n, t, b)
		if m < 0 {
			return nil, protowire.ParseError(m)
		}
		if n == num && t == typ {
			found = b[:m]
			if typ == protowire.BytesType {
				v, k := protowire.ConsumeBytes(b)
				if k < 0 {
					return nil, protowire.ParseError(k)
				}
				found = v
			}
		}
		b = b[m:]
	}
	return found, nil
}
