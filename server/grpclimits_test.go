package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// bigCheckRequest is a CheckRequest shaped like Envoy's with
// with_request_body: the usual attributes (see
// authz/extauthz/testdata/checkrequests) plus a body of bodySize bytes, as a
// string (body) or as bytes (raw_body, pack_as_bytes).
func bigCheckRequest(authorization string, bodySize int, raw bool) *authv3.CheckRequest {
	body := strings.Repeat("x", bodySize)
	headers := map[string]string{
		":authority":     "api.example.com",
		":method":        "POST",
		":path":          "/v1/rooms",
		":scheme":        "https",
		"content-type":   "application/octet-stream",
		"content-length": "5242880",
		"x-request-id":   "67f2084d-440c-9b0c-9644-57cc88c9f165",
	}
	if authorization != "" {
		headers["authorization"] = authorization
	}
	h := &authv3.AttributeContext_HttpRequest{
		Id: "8227617712332952062", Method: "POST", Path: "/v1/rooms", Host: "api.example.com",
		Scheme: "https", Protocol: "HTTP/1.1", Headers: headers, Size: int64(bodySize),
	}
	if raw {
		h.RawBody = []byte(body)
	} else {
		h.Body = body
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: h},
	}}
}

// TestLargeCheckRequestIsDecided: a CheckRequest over gRPC's default 4 MiB
// (a 5 MiB body forwarded by with_request_body) is decided by gatehouse, an
// allow or a deny, never answered with a gRPC error that Envoy's
// failure_mode_allow would turn into an allow.
func TestLargeCheckRequestIsDecided(t *testing.T) {
	cfg := baseConfig(t)
	cfg.UsersFile = usersFile(t)
	r := start(t, cfg, Options{})
	client := authv3.NewAuthorizationClient(r.conn)
	for _, c := range []struct {
		name          string
		authorization string
		raw           bool
		want          codes.Code
	}{
		{"valid token, body", "Bearer " + token(t, activeUser), false, codes.OK},
		{"valid token, raw body", "Bearer " + token(t, activeUser), true, codes.OK},
		{"bad token", "Bearer not.a.jwt", false, codes.Unauthenticated},
		{"inactive user", "Bearer " + token(t, inactiveUser), true, codes.Unauthenticated},
		{"no credentials", "", false, codes.Unauthenticated},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), waitBound)
			defer cancel()
			resp, err := client.Check(ctx, bigCheckRequest(c.authorization, 5<<20, c.raw))
			if err != nil {
				t.Fatalf("a 5 MiB CheckRequest got a gRPC error (failure_mode_allow would let it through): %v", err)
			}
			if got := codes.Code(resp.GetStatus().GetCode()); got != c.want {
				t.Fatalf("status %v, want %v", got, c.want)
			}
			if c.want == codes.OK && resp.GetOkResponse() == nil {
				t.Fatalf("OK status without ok_response: %v", resp)
			}
			if c.want != codes.OK && resp.GetDeniedResponse().GetStatus().GetCode() != 401 {
				t.Fatalf("deny without HTTP 401: %v", resp.GetDeniedResponse())
			}
		})
	}
}

// TestCheckRequestOverTheLimit: what docs/envoy.md says of a CheckRequest over
// GATEHOUSE_GRPC_MAX_RECV_SIZE: gRPC refuses it with RESOURCE_EXHAUSTED
// before gatehouse sees it, which is why Envoy's failure_mode_allow must stay
// false. A request under the limit is still decided.
func TestCheckRequestOverTheLimit(t *testing.T) {
	cfg := baseConfig(t)
	cfg.UsersFile = usersFile(t)
	cfg.GRPCMaxRecvSize = 4 << 20
	r := start(t, cfg, Options{})
	client := authv3.NewAuthorizationClient(r.conn)
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	_, err := client.Check(ctx, bigCheckRequest("Bearer "+token(t, activeUser), 5<<20, false))
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("5 MiB CheckRequest over a 4 MiB limit: %v, want RESOURCE_EXHAUSTED", err)
	}
	resp, err := client.Check(ctx, bigCheckRequest("Bearer "+token(t, activeUser), 3<<20, false))
	if err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		t.Fatalf("3 MiB CheckRequest under the limit: %v, %v; want an allow", resp.GetStatus(), err)
	}
}

// rawH2Client is a live HTTP/2 client that opens a connection and then
// stays idle: it sends the preface and SETTINGS, acknowledges the server's
// SETTINGS and PINGs, and ignores GOAWAY (a client that keeps its
// connections open whatever the server says). established is closed when
// the server's SETTINGS arrived; closed when the server closed the
// connection.
type rawH2Client struct {
	conn                net.Conn
	established, closed chan struct{}
	goaway              atomic.Bool
}

func dialRawH2(t *testing.T, addr string) *rawH2Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitBound)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawH2Client{conn: conn, established: make(chan struct{}), closed: make(chan struct{})}
	// The client preface, then an empty SETTINGS frame.
	if _, err := io.WriteString(conn, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if err := writeH2Frame(conn, 0x4, 0, nil); err != nil {
		t.Fatal(err)
	}
	go c.read()
	return c
}

// writeH2Frame writes one frame of the connection (stream 0).
func writeH2Frame(w io.Writer, typ, flags byte, payload []byte) error {
	hdr := make([]byte, 9, 9+len(payload))
	hdr[0], hdr[1], hdr[2] = byte(len(payload)>>16), byte(len(payload)>>8), byte(len(payload))
	hdr[3], hdr[4] = typ, flags
	_, err := w.Write(append(hdr, payload...))
	return err
}

func (c *rawH2Client) read() {
	defer close(c.closed)
	br := bufio.NewReader(c.conn)
	hdr := make([]byte, 9)
	first := true
	for {
		if _, err := io.ReadFull(br, hdr); err != nil {
			return
		}
		n := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
		payload := make([]byte, n)
		if _, err := io.ReadFull(br, payload); err != nil {
			return
		}
		typ, flags := hdr[3], hdr[4]
		const ack = 0x1
		switch {
		case typ == 0x4 && flags&ack == 0: // SETTINGS
			if writeH2Frame(c.conn, 0x4, ack, nil) != nil {
				return
			}
			if first {
				first = false
				close(c.established)
			}
		case typ == 0x6 && flags&ack == 0: // PING
			if writeH2Frame(c.conn, 0x6, ack, payload) != nil {
				return
			}
		case typ == 0x7: // GOAWAY: ignored
			c.goaway.Store(true)
		}
	}
}

// waitClosed waits, within waitBound, for ch to be closed.
func waitClosed(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitBound):
		t.Fatalf("%s: not within %s", what, waitBound)
	}
}

// TestIdleConnectionsAreReleased: connections without a stream for
// GATEHOUSE_GRPC_MAX_CONNECTION_IDLE are sent a GOAWAY and closed, even when
// the client ignores the GOAWAY, and the goroutines the server held for them
// are released; a grpc-go client (as Envoy) reconnects on its next request,
// which succeeds; a connection in use is left alone.
func TestIdleConnectionsAreReleased(t *testing.T) {
	const idle = time.Second
	cfg := baseConfig(t)
	cfg.UsersFile = usersFile(t)
	cfg.GRPCMaxConnectionIdle = idle
	r := start(t, cfg, Options{})
	addr := r.srv.GRPCAddr().String()

	t.Run("idle connections are closed and their goroutines released", func(t *testing.T) {
		before := settledGoroutines()
		const n = 50
		clients := make([]*rawH2Client, n)
		for i := range clients {
			clients[i] = dialRawH2(t, addr)
		}
		for _, c := range clients {
			waitClosed(t, "server SETTINGS", c.established)
		}
		// Each connection costs the server at least its reader, its writer
		// and its keepalive goroutine, and this test one reader.
		during := runtime.NumGoroutine()
		if during < before+3*n {
			t.Fatalf("%d goroutines with %d idle connections open, %d before: the count does not see them", during, n, before)
		}
		for i, c := range clients {
			waitClosed(t, fmt.Sprintf("server closing idle connection %d", i), c.closed)
			if !c.goaway.Load() {
				t.Errorf("connection %d closed without a GOAWAY", i)
			}
		}
		deadline := time.Now().Add(waitBound)
		for {
			after := runtime.NumGoroutine()
			if after <= before+5 {
				t.Logf("goroutines: %d before, %d with %d idle connections open, %d after they were closed", before, during, n, after)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d goroutines after the idle connections were closed, %d before: not released", after, before)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	t.Run("a grpc-go client reconnects on its next request", func(t *testing.T) {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		check := func() {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), waitBound)
			defer cancel()
			resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, bigCheckRequest("Bearer "+token(t, activeUser), 0, false))
			if err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.OK {
				t.Fatalf("Check: %v, %v; want an allow", resp.GetStatus(), err)
			}
		}
		check()
		// After the server's GOAWAY the channel goes IDLE: its connection
		// is gone.
		ctx, cancel := context.WithTimeout(context.Background(), waitBound)
		defer cancel()
		for st := conn.GetState(); st != connectivity.Idle; st = conn.GetState() {
			if !conn.WaitForStateChange(ctx, st) {
				t.Fatalf("channel still %v %s after its last request; want IDLE (closed by the server)", st, waitBound)
			}
		}
		check()
	})

	t.Run("a connection in use is kept", func(t *testing.T) {
		var dials atomic.Int32
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
				dials.Add(1)
				var d net.Dialer
				return d.DialContext(ctx, "tcp", a)
			}))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		client := authv3.NewAuthorizationClient(conn)
		tok := "Bearer " + token(t, activeUser)
		// Requests a tenth of the idle limit apart, for three idle limits.
		for end := time.Now().Add(3 * idle); time.Now().Before(end); time.Sleep(idle / 10) {
			ctx, cancel := context.WithTimeout(context.Background(), waitBound)
			resp, err := client.Check(ctx, bigCheckRequest(tok, 0, false))
			cancel()
			if err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.OK {
				t.Fatalf("Check on a busy connection: %v, %v", resp.GetStatus(), err)
			}
		}
		if n := dials.Load(); n != 1 {
			t.Errorf("%d connections dialled for a connection in use; want 1 (it was closed as idle)", n)
		}
	})
}

// settledGoroutines returns the goroutine count once it stopped falling
// (goroutines of earlier tests winding down), within a bound.
func settledGoroutines() int {
	n := runtime.NumGoroutine()
	for range 50 {
		time.Sleep(20 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m >= n {
			return m
		}
		n = m
	}
	return n
}
