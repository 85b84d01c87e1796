package server

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"

	"github.com/gatehouse-authz/gatehouse/internal/testkit"
	"github.com/gatehouse-authz/gatehouse/internal/testkit/certtest"
)

// tlsSetup is a server certificate and, for mutual TLS, a client CA, as
// files, with the clients' side of them.
type tlsSetup struct {
	dir                 string
	ca                  *certtest.CA
	certFile, keyFile   string
	clientCAFile        string
	clientCA, otherCA   *certtest.CA
	client, otherClient certtest.Pair
}

func newTLSSetup(t *testing.T, mutual bool) *tlsSetup {
	t.Helper()
	s := &tlsSetup{dir: t.TempDir(), ca: certtest.NewCA(t, "gatehouse server CA")}
	s.certFile, s.keyFile = s.ca.Server(t, "gatehouse").WriteFiles(t, s.dir, "server")
	if mutual {
		s.clientCA = certtest.NewCA(t, "proxy client CA")
		s.otherCA = certtest.NewCA(t, "another CA")
		s.clientCAFile = s.clientCA.WriteFile(t, s.dir, "client-ca.crt")
		s.client = s.clientCA.Client(t, "envoy")
		// Same name, signed by a CA gatehouse does not trust.
		s.otherClient = s.otherCA.Client(t, "envoy")
	}
	return s
}

func (s *tlsSetup) apply(cfg *testConfig) {
	cfg.TLSCertFile, cfg.TLSKeyFile, cfg.TLSClientCAFile = s.certFile, s.keyFile, s.clientCAFile
}

// clientConfig trusts the server's CA and presents cert when given.
func (s *tlsSetup) clientConfig(cert *certtest.Pair) *tls.Config {
	c := &tls.Config{RootCAs: s.ca.Pool(), ServerName: "127.0.0.1"}
	if cert != nil {
		c.Certificates = []tls.Certificate{cert.TLS}
	}
	return c
}

// startTLS is start for a server whose gRPC listener speaks TLS: r.conn
// uses clientTLS.
func startTLS(t *testing.T, cfg testConfig, opts Options, clientTLS *tls.Config) *running {
	t.Helper()
	logs := &syncBuffer{}
	logger := testkit.NewLoggerAt(logs, cfg.LogLevel)
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := New(ctx, cfg.Config, logger, opts)
	if err != nil {
		cancel()
		t.Fatalf("New: %v", err)
	}
	r := &running{srv: srv, cancel: cancel, done: make(chan error, 1), logs: logs}
	go func() { r.done <- srv.Serve(ctx) }()
	conn, err := grpc.NewClient(srv.GRPCAddr().String(), grpc.WithTransportCredentials(credentials.NewTLS(clientTLS)))
	if err != nil {
		t.Fatal(err)
	}
	r.conn = conn
	t.Cleanup(func() {
		conn.Close()
		r.stop(t)
	})
	r.waitHealth(t, "", healthpb.HealthCheckResponse_SERVING)
	return r
}

func checkRequestFor(authorization string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{
			Method: "GET", Path: "/v1/rooms", Host: "api.example.com",
			Headers: map[string]string{":method": "GET", ":path": "/v1/rooms", ":authority": "api.example.com", "authorization": authorization},
		},
	}}}
}

// grpcCheck sends one Check over a new grpc-go connection with creds.
func grpcCheck(t *testing.T, addr string, creds credentials.TransportCredentials, authorization string) (*authv3.CheckResponse, error) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return authv3.NewAuthorizationClient(conn).Check(ctx, checkRequestFor(authorization))
}

// connectCheck sends one Check with connect-go (an independent gRPC
// implementation on net/http's HTTP/2) over TLS.
func connectCheck(t *testing.T, addr string, clientTLS *tls.Config, authorization string) (*authv3.CheckResponse, error) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: clientTLS, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	client := connect.NewClient[authv3.CheckRequest, authv3.CheckResponse](
		&http.Client{Transport: tr, Timeout: 5 * time.Second},
		"https://"+addr+authv3.Authorization_Check_FullMethodName,
		connect.WithGRPC(),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := client.CallUnary(ctx, connect.NewRequest(checkRequestFor(authorization)))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

// httpsCheck asks the forward-auth listener over TLS.
func httpsCheck(t *testing.T, addr string, clientTLS *tls.Config, authorization string) (*http.Response, error) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: clientTLS}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest("GET", "https://"+addr+"/check/v1/rooms", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", authorization)
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}

// TestTLSListeners: with a certificate, the gRPC and forward-auth listeners
// speak TLS only (1.2 or later), to grpc-go, connect-go and net/http; the
// ops listener stays plain HTTP for the kubelet's probes.
func TestTLSListeners(t *testing.T) {
	ts := newTLSSetup(t, false)
	cfg := baseConfig(t)
	cfg.UsersFile = usersFile(t)
	ts.apply(&cfg)
	r := startTLS(t, cfg, Options{}, ts.clientConfig(nil))
	grpcAddr, httpAddr := r.srv.GRPCAddr().String(), r.srv.HTTPAddr().String()
	bearer := "Bearer " + token(t, activeUser)

	if resp := r.check(t, bearer); !allowed(resp) {
		t.Fatalf("grpc-go over TLS: %v", resp)
	}
	resp, err := connectCheck(t, grpcAddr, ts.clientConfig(nil), bearer)
	if err != nil || !allowed(resp) {
		t.Fatalf("connect-go over TLS: %v, %v", resp, err)
	}
	hresp, err := httpsCheck(t, httpAddr, ts.clientConfig(nil), bearer)
	if err != nil || hresp.StatusCode != http.StatusOK || hresp.Header.Get("X-Auth-User-Id") != activeUser {
		t.Fatalf("forward-auth over TLS: %v, %v", hresp, err)
	}
	if hresp.TLS == nil || hresp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("forward-auth connection state %+v", hresp.TLS)
	}

	if _, err := grpcCheck(t, grpcAddr, insecure.NewCredentials(), bearer); err == nil {
		t.Error("a plaintext gRPC client was answered by the TLS listener")
	}
	if resp, err := http.Get("http://" + httpAddr + "/check/v1/rooms"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("a plaintext HTTP request was allowed by the TLS listener")
		}
	}
	old := ts.clientConfig(nil)
	old.MaxVersion = tls.VersionTLS11
	for _, addr := range []string{grpcAddr, httpAddr} {
		c, err := tls.Dial("tcp", addr, old)
		if err == nil {
			c.Close()
			t.Errorf("%s accepted TLS 1.1", addr)
		}
	}
	if code, body := r.get(t, "/readyz?verbose"); code != http.StatusOK || !strings.Contains(body, "[+]config tls version ") {
		t.Errorf("plain ops listener /readyz?verbose = %d %q", code, body)
	}
}

// TestMutualTLS: with a client CA, only a caller holding a certificate that
// CA signed gets an answer: no certificate, or one from another CA, is
// refused in the handshake, by grpc-go, connect-go and net/http alike.
func TestMutualTLS(t *testing.T) {
	ts := newTLSSetup(t, true)
	cfg := baseConfig(t)
	cfg.UsersFile = usersFile(t)
	ts.apply(&cfg)
	r := startTLS(t, cfg, Options{}, ts.clientConfig(&ts.client))
	grpcAddr, httpAddr := r.srv.GRPCAddr().String(), r.srv.HTTPAddr().String()
	bearer := "Bearer " + token(t, activeUser)

	cases := []struct {
		name string
		cert *certtest.Pair
		ok   bool
	}{
		{"the proxy's certificate", &ts.client, true},
		{"no certificate", nil, false},
		{"a certificate of another CA", &ts.otherClient, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, err := grpcCheck(t, grpcAddr, credentials.NewTLS(ts.clientConfig(c.cert)), bearer)
			if got := err == nil && allowed(resp); got != c.ok {
				t.Errorf("grpc-go: allowed %v (%v), want %v", got, err, c.ok)
			}
			resp, err = connectCheck(t, grpcAddr, ts.clientConfig(c.cert), bearer)
			if got := err == nil && allowed(resp); got != c.ok {
				t.Errorf("connect-go: allowed %v (%v), want %v", got, err, c.ok)
			}
			hresp, err := httpsCheck(t, httpAddr, ts.clientConfig(c.cert), bearer)
			if got := err == nil && hresp.StatusCode == http.StatusOK; got != c.ok {
				t.Errorf("forward-auth: allowed %v (%v), want %v", got, err, c.ok)
			}
			if !c.ok && err == nil {
				t.Errorf("forward-auth answered %d without a valid client certificate", hresp.StatusCode)
			}
		})
	}
}

// replaceFile writes data to path by renaming a new file over it, as
// cert-manager's and an editor's writes do.
func replaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// peerSerial dials addr and returns the serial of the certificate served.
func peerSerial(addr string, cfg *tls.Config) (string, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return "", err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String(), nil
}

// TestTLSCertificateReload: a certificate replaced on disk is served to new
// connections without a restart, while a connection opened before keeps
// working on the old one; a broken replacement (a key that does not match,
// an expired certificate) keeps the certificate in use.
func TestTLSCertificateReload(t *testing.T) {
	ts := newTLSSetup(t, false)
	cfg := baseConfig(t)
	cfg.UsersFile = usersFile(t)
	ts.apply(&cfg)
	r := startTLS(t, cfg, Options{}, ts.clientConfig(nil))
	grpcAddr, httpAddr := r.srv.GRPCAddr().String(), r.srv.HTTPAddr().String()
	bearer := "Bearer " + token(t, activeUser)

	// The long-lived connection, as Envoy keeps one.
	var p peer.Peer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	client := authv3.NewAuthorizationClient(r.conn)
	if _, err := client.Check(ctx, checkRequestFor(bearer), grpc.Peer(&p)); err != nil {
		t.Fatal(err)
	}
	oldSerial := p.AuthInfo.(credentials.TLSInfo).State.PeerCertificates[0].SerialNumber.String()

	// A broken replacement: the new certificate with the old key.
	next := ts.ca.Server(t, "gatehouse renewed")
	replaceFile(t, ts.certFile, next.CertPEM)
	eventually(t, "the mismatched pair refused", func() bool {
		return strings.Contains(r.logs.String(), "configuration reload refused")
	})
	for _, addr := range []string{grpcAddr, httpAddr} {
		if got, err := peerSerial(addr, ts.clientConfig(nil)); err != nil || got != oldSerial {
			t.Fatalf("%s after a mismatched pair: serial %s, %v; want the old %s", addr, got, err, oldSerial)
		}
	}
	if code, body := r.get(t, "/readyz?verbose"); code != http.StatusOK || !strings.Contains(body, "[-]config tls") {
		t.Errorf("/readyz?verbose after a refused reload = %d %q", code, body)
	}

	// The key follows: the pair is whole again and new connections get it.
	written := time.Now()
	replaceFile(t, ts.keyFile, next.KeyPEM)
	newSerial := next.Cert.SerialNumber.String()
	for _, addr := range []string{grpcAddr, httpAddr} {
		eventually(t, "the new certificate on "+addr, func() bool {
			got, err := peerSerial(addr, ts.clientConfig(nil))
			return err == nil && got == newSerial
		})
	}
	t.Logf("certificate reload latency (write to a new connection served the new certificate): %s",
		time.Since(written).Round(time.Millisecond))

	// The connection opened before is still open, on the old certificate.
	if _, err := client.Check(ctx, checkRequestFor(bearer), grpc.Peer(&p)); err != nil {
		t.Fatalf("the connection opened before the reload failed: %v", err)
	}
	if got := p.AuthInfo.(credentials.TLSInfo).State.PeerCertificates[0].SerialNumber.String(); got != oldSerial {
		t.Errorf("the open connection now shows serial %s: it was re-established (want the old %s)", got, oldSerial)
	}

	// An expired certificate is refused too.
	expired := ts.ca.ServerValid(t, "gatehouse expired", time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour))
	before := strings.Count(r.logs.String(), "configuration reload refused")
	replaceFile(t, ts.keyFile, expired.KeyPEM)
	replaceFile(t, ts.certFile, expired.CertPEM)
	eventually(t, "the expired certificate refused", func() bool {
		return strings.Count(r.logs.String(), "configuration reload refused") > before &&
			strings.Contains(r.logs.String(), "expired at")
	})
	if got, err := peerSerial(grpcAddr, ts.clientConfig(nil)); err != nil || got != newSerial {
		t.Errorf("after an expired certificate: serial %s, %v; want %s still", got, err, newSerial)
	}
}

// TestTLSRefusedAtStart: a certificate that cannot serve refuses the start,
// naming the file; half a pair is a configuration error.
func TestTLSRefusedAtStart(t *testing.T) {
	ts := newTLSSetup(t, false)
	expired := ts.ca.ServerValid(t, "old", time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour))
	ecf, ekf := expired.WriteFiles(t, t.TempDir(), "old")
	other := ts.ca.Server(t, "other")
	_, otherKey := other.WriteFiles(t, t.TempDir(), "other")
	for _, c := range []struct {
		name string
		set  func(c *testConfig)
		want string
	}{
		{"expired", func(c *testConfig) { c.TLSCertFile, c.TLSKeyFile = ecf, ekf }, "expired at"},
		{"mismatched key", func(c *testConfig) { c.TLSCertFile, c.TLSKeyFile = ts.certFile, otherKey }, "private key does not match"},
		{"missing file", func(c *testConfig) { c.TLSCertFile, c.TLSKeyFile = ts.certFile, "/nonexistent/key.pem" }, "/nonexistent/key.pem"},
		{"no key", func(c *testConfig) { c.TLSCertFile = ts.certFile }, "TLSKeyFile: must be set with TLSCertFile"},
		{"CA without TLS", func(c *testConfig) { c.TLSClientCAFile = ts.certFile }, "TLSClientCAFile"},
		{"CA file without a certificate", func(c *testConfig) {
			c.TLSCertFile, c.TLSKeyFile, c.TLSClientCAFile = ts.certFile, ts.keyFile, ts.keyFile
		}, "holds no PEM certificate"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := baseConfig(t)
			cfg.UsersFile = usersFile(t)
			c.set(&cfg)
			_, err := New(context.Background(), cfg.Config, nil, Options{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("New = %v, want an error containing %q", err, c.want)
			}
			var ce *ConfigError
			if strings.Contains(c.name, "no key") && !errors.As(err, &ce) {
				t.Errorf("%v is not a *ConfigError", err)
			}
		})
	}
}
