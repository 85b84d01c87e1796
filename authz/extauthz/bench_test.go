package extauthz

import (
	"context"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"

	"github.com/gatehouse-authz/gatehouse/authz"
)

// BenchmarkCheck measures the adapter alone: mapping in, a Decider that
// allows, mapping out.
func BenchmarkCheck(b *testing.B) {
	b.Run("allow", func(b *testing.B) {
		benchCheck(b, New(allowAll, Options{}), loadFixture(b, "istio_sidecar_http1_post.json"))
	})
	b.Run("deny", func(b *testing.B) {
		d := authz.Decision{Result: authz.Deny, Reason: authz.ReasonInvalidToken, Status: 401,
			Message: "Invalid token.", Challenge: authz.ChallengeInvalidToken}
		benchCheck(b, New(decide(d), Options{}), loadFixture(b, "istio_sidecar_http1_post.json"))
	})
	b.Run("header_map", func(b *testing.B) {
		benchCheck(b, New(allowAll, Options{}), loadFixture(b, "grpc_a92_style_header_map.json"))
	})
	// With the real core and a warm token cache, for scale.
	b.Run("authorizer", func(b *testing.B) {
		req := loadFixture(b, "istio_sidecar_http1_post.json")
		setAuthorization(req, "Bearer "+signToken(b, nil))
		benchCheck(b, New(newAuthorizer(b, newFakeDir()), Options{}), req)
	})
}

func benchCheck(b *testing.B, srv *Server, req *authv3.CheckRequest) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := srv.Check(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// noopAuthz is the do-nothing server performance targets compare against: a
// static OK answer.
type noopAuthz struct {
	authv3.UnimplementedAuthorizationServer
	resp *authv3.CheckResponse
}

func (n noopAuthz) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return n.resp, nil
}

// BenchmarkCheckLoopback measures one Check over real loopback gRPC with the
// grpc-go client, serially and in parallel, next to the do-nothing server.
func BenchmarkCheckLoopback(b *testing.B) {
	req := loadFixture(b, "istio_sidecar_http1_post.json")
	servers := []struct {
		name     string
		register func(*grpc.Server)
	}{
		{"gatehouse", New(allowAll, Options{}).Register},
		{"noop", func(g *grpc.Server) {
			authv3.RegisterAuthorizationServer(g, noopAuthz{resp: &authv3.CheckResponse{Status: &rpcstatus.Status{}}})
		}},
	}
	for _, s := range servers {
		client := grpcClient(b, startServer(b, s.register))
		ctx := context.Background()
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := client.Check(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(s.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := client.Check(ctx, req); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
