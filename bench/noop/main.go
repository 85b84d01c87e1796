// Command noop is the do-nothing Envoy ext_authz server that gatehouse's load
// benchmark compares against: it answers every Check with a static OK and
// reads nothing of the request beyond what gRPC decodes. Whatever gatehouse
// costs above this server is the price of deciding.
//
// It listens on --addr (default 127.0.0.1:0), prints "listening <addr>" on
// stdout once it accepts connections, and stops gracefully on SIGINT or
// SIGTERM. --stream-workers N (default 0: grpc-go's default, a goroutine per
// stream) gives it gatehouse's pool of stream workers, for the one
// experiment that asks how much of gatehouse's margin that pool is
// (docs/performance.md); the baseline of make load never sets it.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
)

// server answers OK to every Check with one shared, never-modified response.
type server struct {
	authv3.UnimplementedAuthorizationServer
	ok *authv3.CheckResponse
}

func (s *server) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return s.ok, nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen `address` (host:port)")
	workers := flag.Uint("stream-workers", 0, "grpc.NumStreamWorkers (0: grpc-go's default; an experiment, not the baseline)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*addr, uint32(*workers)); err != nil {
		log.Error("noop server failed", "error", err.Error())
		os.Exit(1)
	}
}

func run(addr string, workers uint32) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	// Default grpc-go options: the baseline is what anyone gets with no
	// tuning at all.
	var opts []grpc.ServerOption
	if workers > 0 {
		opts = append(opts, grpc.NumStreamWorkers(workers))
	}
	g := grpc.NewServer(opts...)
	authv3.RegisterAuthorizationServer(g, &server{ok: &authv3.CheckResponse{Status: &rpcstatus.Status{}}})
	errc := make(chan error, 1)
	go func() { errc <- g.Serve(ln) }()
	fmt.Printf("listening %s\n", ln.Addr())
	select {
	case <-ctx.Done():
		g.GracefulStop()
		return nil
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	}
}
