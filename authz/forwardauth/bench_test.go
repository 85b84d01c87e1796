package forwardauth

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/gatehouse-authz/gatehouse/authz/extauthz"
)

// discardWriter is a reusable http.ResponseWriter that keeps only the status,
// to measure the handler without a recorder's allocations.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(status int)      { w.status = status }

// BenchmarkForwardAuth measures one allowed decision (real authorizer, Meet's
// routes, in-memory directory, warm token cache, the same token) over HTTP
// and over gRPC on loopback, and in process for each adapter.
func BenchmarkForwardAuth(b *testing.B) {
	a := newAuthorizer(b, testDirectory())
	auth := "Bearer " + signToken(b, nil)
	h := New(a, Options{})
	ctx := context.Background()

	envoyReq := httptest.NewRequest(http.MethodGet, "/check"+roomsPath, nil)
	envoyReq.Host = "meet.example.com"
	envoyReq.Header.Set("Authorization", auth)
	traefikReq := httptest.NewRequest(http.MethodGet, "/check", nil)
	traefikReq.Header = merge(traefikHeaders("GET", roomsPath), http.Header{"Authorization": {auth}})

	b.Run("in-process/recorder", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, envoyReq)
			if w.Code != http.StatusOK {
				b.Fatalf("status %d", w.Code)
			}
		}
	})
	for _, c := range []struct {
		name string
		req  *http.Request
	}{{"http_service", envoyReq}, {"x-forwarded", traefikReq}} {
		b.Run("in-process/handler/"+c.name, func(b *testing.B) {
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				h.ServeHTTP(w, c.req)
				if w.status != http.StatusOK {
					b.Fatalf("status %d", w.status)
				}
			}
		})
	}
	b.Run("in-process/handler/deny-401", func(b *testing.B) {
		req := httptest.NewRequest(http.MethodGet, "/check"+roomsPath, nil)
		w := &discardWriter{h: http.Header{}}
		b.ReportAllocs()
		for b.Loop() {
			clear(w.h)
			h.ServeHTTP(w, req)
			if w.status != http.StatusUnauthorized {
				b.Fatalf("status %d", w.status)
			}
		}
	})

	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	b.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	httpCheck := func(req *http.Request) error {
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errors.New(resp.Status)
		}
		return nil
	}
	newHTTPReq := func() *http.Request {
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/check"+roomsPath, nil)
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Authorization", auth)
		return req
	}
	b.Run("http-loopback", func(b *testing.B) {
		req := newHTTPReq()
		b.ReportAllocs()
		for b.Loop() {
			if err := httpCheck(req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("http-loopback/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			req := newHTTPReq()
			for pb.Next() {
				if err := httpCheck(req); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})

	grpcSrv := extauthz.New(a, extauthz.Options{})
	checkReq := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{
			Method: "GET", Path: roomsPath, Host: "meet.example.com", Protocol: "HTTP/1.1",
			Headers: map[string]string{
				":method": "GET", ":path": roomsPath, ":authority": "meet.example.com", "authorization": auth,
			},
		},
	}}}
	b.Run("grpc-in-process", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			resp, err := grpcSrv.Check(ctx, checkReq)
			if err != nil || resp.GetStatus().GetCode() != 0 {
				b.Fatalf("%v %v", resp.GetStatus(), err)
			}
		}
	})
	gc := grpcLoopback(b, grpcSrv)
	grpcCheck := func() error {
		resp, err := gc.Check(ctx, checkReq)
		if err != nil {
			return err
		}
		if resp.GetStatus().GetCode() != 0 {
			return errors.New(resp.GetStatus().String())
		}
		return nil
	}
	b.Run("grpc-loopback", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := grpcCheck(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("grpc-loopback/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := grpcCheck(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// grpcLoopback serves srv with grpc-go on loopback and returns a client.
func grpcLoopback(b *testing.B, srv *extauthz.Server) authv3.AuthorizationClient {
	b.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	g := grpc.NewServer(grpc.UnaryInterceptor(extauthz.UnaryRecoverer(nil)))
	srv.Register(g)
	done := make(chan error, 1)
	go func() { done <- g.Serve(lis) }()
	b.Cleanup(func() {
		g.Stop()
		if err := <-done; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			b.Errorf("serve: %v", err)
		}
	})
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	return authv3.NewAuthorizationClient(conn)
}
