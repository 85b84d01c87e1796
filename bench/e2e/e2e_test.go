package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/bench/workload"
	"github.com/gatehouse-authz/gatehouse/internal/testkit/redistest"
	"github.com/gatehouse-authz/gatehouse/server"
	"github.com/gatehouse-authz/gatehouse/userstore/redisstore"
)

const (
	secret = "gatehouse-e2e-benchmark-secret-0123456789"
	users  = 2000
)

// startGatehouse runs a gatehouse server against a fresh, seeded Redis and
// returns a client connection to it.
func startGatehouse(tb testing.TB) *grpc.ClientConn {
	tb.Helper()
	rs := redistest.Start(tb)
	ctx := context.Background()
	pipe := rs.Client().Pipeline()
	for i := range users {
		pipe.HSet(ctx, "gatehouse:user:"+workload.UserID(i), "active", "1")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		tb.Fatalf("seed users: %v", err)
	}
	cfg := server.DefaultConfig()
	cfg.JWT.Secret = []byte(secret)
	cfg.Redis = &redisstore.ClientConfig{URL: rs.URL()}
	cfg.GRPCAddr = "127.0.0.1:0"
	cfg.OpsAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "" // gRPC only
	srvCtx, cancel := context.WithCancel(ctx)
	srv, err := server.New(srvCtx, cfg, slog.New(slog.DiscardHandler), server.Options{})
	if err != nil {
		cancel()
		tb.Fatalf("server.New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(srvCtx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Serve: %v", err)
		}
	})
	conn, err := grpc.NewClient(srv.GRPCAddr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(workload.RawCodec{})))
	if err != nil {
		tb.Fatalf("dial: %v", err)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn
}

// BenchmarkServe drives the server with 16 goroutines per CPU (64 on two
// cores, the load benchmark's top concurrency) over one connection.
func BenchmarkServe(b *testing.B) {
	conn := startGatehouse(b)
	jwt := authz.JWTConfig{Secret: []byte(secret), Algorithm: authz.DefaultAlgorithm, Issuer: authz.DefaultIssuer}
	for _, name := range []string{workload.Hot, workload.Distinct, workload.Invalid, workload.Istio} {
		w, err := workload.Build(name, jwt, users, time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			// Warm the caches as the load benchmark's warm-up does.
			for _, req := range w.Requests {
				if err := check(conn, req, w.WantCode, new(workload.StatusCode)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				resp := new(workload.StatusCode)
				i := 0
				for pb.Next() {
					if err := check(conn, w.Requests[i%len(w.Requests)], w.WantCode, resp); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
		})
	}
}

func check(conn *grpc.ClientConn, req []byte, want int32, resp *workload.StatusCode) error {
	if err := conn.Invoke(context.Background(), "/envoy.service.auth.v3.Authorization/Check", req, resp); err != nil {
		return err
	}
	if got := resp.Code; got != want {
		return fmt.Errorf("status code %d, want %d", got, want)
	}
	return nil
}

// TestServe keeps the benchmark's set-up working in `make test`: every
// scenario gets the answers it expects from a real server.
func TestServe(t *testing.T) {
	conn := startGatehouse(t)
	jwt := authz.JWTConfig{Secret: []byte(secret), Algorithm: authz.DefaultAlgorithm, Issuer: authz.DefaultIssuer}
	for _, name := range []string{workload.Hot, workload.Distinct, workload.Invalid, workload.Istio} {
		w, err := workload.Build(name, jwt, 20, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		for i, req := range w.Requests[:min(len(w.Requests), 20)] {
			if err := check(conn, req, w.WantCode, new(workload.StatusCode)); err != nil {
				t.Fatalf("%s request %d: %v", name, i, err)
			}
		}
	}
}
