package server

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestDrain: after the shutdown starts, health says NOT_SERVING and /readyz
// 503 at once, but for the drain period checks are still answered, over
// new connections too (Envoy keeps dialling a pod until its DNS refresh or
// health checks catch up): a client that reconnects is answered, not
// refused. Then the server stops.
func TestDrain(t *testing.T) {
	const drain = time.Second
	cfg := baseConfig(t)
	cfg.UsersFile = usersFile(t)
	cfg.DrainPeriod = drain
	r := start(t, cfg, Options{})
	bearer := "Bearer " + token(t, activeUser)
	grpcAddr, httpAddr := r.srv.GRPCAddr().String(), r.srv.HTTPAddr().String()

	wctx, wcancel := context.WithTimeout(context.Background(), waitBound)
	defer wcancel()
	watch, err := healthpb.NewHealthClient(r.conn).Watch(wctx, &healthpb.HealthCheckRequest{Service: AuthorizationService})
	if err != nil {
		t.Fatal(err)
	}
	if msg, err := watch.Recv(); err != nil || msg.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first Watch message: %v, %v", msg.GetStatus(), err)
	}
	wcancel() // no stream holds the graceful stop: only the drain does

	stopped := time.Now()
	r.cancel()
	pollUntil(t, "NOT_SERVING", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		resp, err := healthpb.NewHealthClient(r.conn).Check(ctx, &healthpb.HealthCheckRequest{Service: AuthorizationService})
		return err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_NOT_SERVING
	})
	if code, _ := r.get(t, "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz while draining = %d, want 503", code)
	}

	// The proxy reconnects (a new connection, as after a GOAWAY or a
	// restart of its own) while the server drains: it is answered.
	answered := 0
	for time.Since(stopped) < drain/2 {
		resp, err := grpcCheck(t, grpcAddr, insecure.NewCredentials(), bearer)
		if err != nil || !allowed(resp) {
			t.Fatalf("a new gRPC connection %s into the drain: %v, %v", time.Since(stopped).Round(time.Millisecond), resp, err)
		}
		hresp, err := (&http.Client{Timeout: 2 * time.Second}).Do(func() *http.Request {
			req, _ := http.NewRequest("GET", "http://"+httpAddr+"/check/v1/rooms", nil)
			req.Header.Set("Authorization", bearer)
			return req
		}())
		if err != nil || hresp.StatusCode != http.StatusOK {
			t.Fatalf("a new forward-auth connection %s into the drain: %v, %v", time.Since(stopped).Round(time.Millisecond), hresp, err)
		}
		hresp.Body.Close()
		if !hresp.Close {
			t.Error("forward-auth keeps connections alive while draining: the proxy would not re-dial")
		}
		answered++
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case err := <-r.done:
		t.Fatalf("Serve returned (%v) %s after the shutdown began, before the %s drain", err, time.Since(stopped), drain)
	default:
	}

	if err := r.stop(t); err != nil {
		t.Fatalf("Serve = %v", err)
	}
	took := time.Since(stopped)
	t.Logf("drain: %d checks over new connections answered during the %s drain; Serve returned %s after the shutdown began",
		answered, drain, took.Round(time.Millisecond))
	if took < drain {
		t.Errorf("Serve returned after %s, before the drain period %s", took, drain)
	}
	if c, err := net.DialTimeout("tcp", grpcAddr, time.Second); err == nil {
		c.Close()
		t.Error("the gRPC listener still accepts connections after the stop")
	}
}
