package extauthz

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/health"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gatehouse-authz/gatehouse/authz"
)

// rawRequest is a CheckRequest already in wire form, sent as is by
// rawCodec: grpc-go's own codec refuses to marshal invalid UTF-8.
type rawRequest []byte

// rawCodec is a client codec that sends rawRequest bytes untouched and
// decodes answers with the standard codec.
type rawCodec struct{ std encoding.CodecV2 }

func (c rawCodec) Name() string { return grpcproto.Name }
func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if r, ok := v.(rawRequest); ok {
		return mem.BufferSlice{mem.SliceBuffer(r)}, nil
	}
	return c.std.Marshal(v)
}
func (c rawCodec) Unmarshal(data mem.BufferSlice, v any) error { return c.std.Unmarshal(data, v) }

// wireRecorder allows everything and records the requests it saw.
type wireRecorder struct {
	mu   sync.Mutex
	seen []authz.Request
}

func (r *wireRecorder) Decide(ctx context.Context, req *authz.Request) authz.Decision {
	r.mu.Lock()
	r.seen = append(r.seen, *req)
	r.mu.Unlock()
	return allowAll.Decide(ctx, req)
}

func (r *wireRecorder) last(tb testing.TB) authz.Request {
	tb.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.seen) == 0 {
		tb.Fatal("the decider was not asked")
	}
	return r.seen[len(r.seen)-1]
}

// wireSide is one server under comparison.
type wireSide struct {
	name    string
	decider *wireRecorder
	logs    *logBuffer
	conn    *grpc.ClientConn
}

// newWireSide starts the server serve makes from a Server asking a
// wireRecorder, or d when not nil, and dials it with rawCodec.
func newWireSide(tb testing.TB, name string, d Decider, serve func(*Server) (*grpc.Server, error)) *wireSide {
	tb.Helper()
	w := &wireSide{name: name, decider: &wireRecorder{}, logs: &logBuffer{}}
	srv := New(w.decider, Options{Logger: newTestLogger(w.logs)})
	if d != nil {
		srv = New(d, Options{})
	}
	g, err := serve(srv)
	if err != nil {
		tb.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Serve(lis) }()
	tb.Cleanup(func() {
		g.Stop()
		if err := <-done; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			tb.Errorf("serve: %v", err)
		}
	})
	w.conn, err = grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{std: encoding.GetCodecV2(grpcproto.Name)})))
	if err != nil {
		tb.Fatalf("grpc client: %v", err)
	}
	tb.Cleanup(func() { _ = w.conn.Close() })
	return w
}

func (w *wireSide) check(ctx context.Context, in []byte) (*authv3.CheckResponse, error) {
	resp := new(authv3.CheckResponse)
	err := w.conn.Invoke(ctx, authv3.Authorization_Check_FullMethodName, rawRequest(in), resp)
	return resp, err
}

// TestNewGRPCServer sends the same wire bytes over loopback gRPC to a
// server registered the standard way and to one made by NewGRPCServer:
// the Decider sees the same request, the answers and the decision log's
// request id are the same, and malformed requests fail the same way.
func TestNewGRPCServer(t *testing.T) {
	std := newWireSide(t, "standard", nil, func(s *Server) (*grpc.Server, error) {
		g := grpc.NewServer(grpc.UnaryInterceptor(UnaryRecoverer(nil)))
		s.Register(g)
		return g, nil
	})
	wire := newWireSide(t, "checkwire", nil, func(s *Server) (*grpc.Server, error) {
		g := s.NewGRPCServer(grpc.UnaryInterceptor(UnaryRecoverer(nil)))
		healthgrpc.RegisterHealthServer(g, health.NewServer())
		return g, nil
	})

	var inputs [][]byte
	for _, name := range fixtureNames(t) {
		req := loadFixture(t, name)
		inputs = append(inputs, wireBytes(t, req))
		req.Attributes.ContextExtensions = map[string]string{"route": "meet"}
		http := req.Attributes.Request.Http
		delete(http.Headers, "authorization")
		http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
			{Key: "Authorization", RawValue: []byte("Bearer a\xff")},
			{Key: "authorization", Value: "Bearer b"},
			{Key: "X-Request-Id", Value: "rid-1"},
		}}
		inputs = append(inputs, wireBytes(t, req))
	}
	bad := protowire.AppendTag(nil, 1, protowire.BytesType) // attributes, length past the end
	bad = protowire.AppendVarint(bad, 10)
	notUTF8 := protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), []byte("G\xffT")) // http.method
	notUTF8 = protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), notUTF8)           // request.http
	notUTF8 = protowire.AppendBytes(protowire.AppendTag(nil, 4, protowire.BytesType), notUTF8)           // attributes.request
	notUTF8 = protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), notUTF8)           // attributes
	inputs = append(inputs, nil, bad, notUTF8)

	ctx := t.Context()
	for i, in := range inputs {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			wantResp, wantErr := std.check(ctx, in)
			gotResp, gotErr := wire.check(ctx, in)
			if status.Code(gotErr) != status.Code(wantErr) {
				t.Fatalf("checkwire: %v; standard: %v", gotErr, wantErr)
			}
			if wantErr != nil {
				if status.Code(wantErr) != codes.Internal {
					t.Fatalf("malformed request: %v, want INTERNAL", wantErr)
				}
				return
			}
			if !proto.Equal(gotResp, wantResp) {
				t.Fatalf("checkwire answered %v\nstandard answered %v", gotResp, wantResp)
			}
			if wantResp.GetStatus().GetCode() == 0 {
				if got, want := wire.decider.last(t), std.decider.last(t); !reflect.DeepEqual(got, want) {
					t.Fatalf("decider saw %+v, want %+v", got, want)
				}
			}
			if got, want := lastRequestID(t, wire.logs), lastRequestID(t, std.logs); got != want {
				t.Fatalf("logged request id %q, want %q", got, want)
			}
		})
	}

	// Other services of the same server keep the standard codec.
	hc, err := healthgrpc.NewHealthClient(wire.conn).Check(ctx, &healthgrpc.HealthCheckRequest{})
	if err != nil || hc.GetStatus() != healthgrpc.HealthCheckResponse_SERVING {
		t.Fatalf("health check through checkwire's codec: %v, %v", hc, err)
	}
}

// TestNewGRPCServerRecovers: interceptors get the *checkwire.Check, and
// UnaryRecoverer still turns a panicking Decider into a deny.
func TestNewGRPCServerRecovers(t *testing.T) {
	srv := New(decideFunc(func(context.Context, *authz.Request) authz.Decision { panic("boom") }), Options{})
	var seen any
	g := srv.NewGRPCServer(grpc.ChainUnaryInterceptor(
		func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			seen = req
			return h(ctx, req)
		},
		UnaryRecoverer(nil)))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	resp, err := grpcClient(t, lis.Addr().String()).Check(t.Context(), loadFixture(t, "istio_sidecar_http1_post.json"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetStatus().GetCode() != int32(codes.Internal) || resp.GetDeniedResponse() == nil {
		t.Fatalf("panicking decider answered %v", resp)
	}
	if _, ok := seen.(interface{ Unmarshal([]byte) error }); !ok {
		t.Fatalf("interceptor saw %T", seen)
	}
}

func wireBytes(tb testing.TB, m proto.Message) []byte {
	tb.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// lastRequestID returns the request_id of the last decision line ("" when
// the line has none).
func lastRequestID(tb testing.TB, logs *logBuffer) string {
	tb.Helper()
	lines := logs.Lines(tb)
	if len(lines) == 0 {
		tb.Fatal("no decision logged")
	}
	id, _ := lines[len(lines)-1]["request_id"].(string)
	return id
}

// BenchmarkCheckLoopbackWire measures one Check over loopback gRPC, the
// request sent pre-encoded, on a server registered the standard way and on
// one made by NewGRPCServer, for the request of make load and for a
// mesh-shaped one (peer certificates and filter metadata).
func BenchmarkCheckLoopbackWire(b *testing.B) {
	load := loadFixture(b, "istio_sidecar_http1_post.json")
	mesh := loadFixture(b, "istio_sidecar_http1_post.json")
	cert := strings.Repeat("MIIDazCCAlOgAwIBAgIUJ2n3b8wq", 40)
	mesh.Attributes.Source.Certificate, mesh.Attributes.Destination.Certificate = cert, cert
	meta, err := structpb.NewStruct(map[string]any{"CLUSTER_ID": "Kubernetes", "NAMESPACE": "istio-system",
		"LABELS": map[string]any{"app": "istio-ingressgateway", "istio": "ingressgateway"}})
	if err != nil {
		b.Fatal(err)
	}
	mesh.Attributes.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"istio.peer": meta}}
	serves := []struct {
		name  string
		serve func(*Server) (*grpc.Server, error)
	}{
		{"standard", func(s *Server) (*grpc.Server, error) {
			g := grpc.NewServer(grpc.UnaryInterceptor(UnaryRecoverer(nil)))
			s.Register(g)
			return g, nil
		}},
		{"checkwire", func(s *Server) (*grpc.Server, error) {
			return s.NewGRPCServer(grpc.UnaryInterceptor(UnaryRecoverer(nil))), nil
		}},
	}
	for _, req := range []struct {
		name string
		in   []byte
	}{{"istio", wireBytes(b, load)}, {"mesh", wireBytes(b, mesh)}} {
		for _, sv := range serves {
			side := newWireSide(b, sv.name, allowAll, sv.serve)
			b.Run(req.name+"/"+sv.name, func(b *testing.B) {
				ctx := context.Background()
				b.ReportAllocs()
				for b.Loop() {
					if _, err := side.check(ctx, req.in); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
