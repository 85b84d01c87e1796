package grpcorigin

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/gatehouse-authz/gatehouse/internal/testkit"
	directoryv1 "github.com/gatehouse-authz/gatehouse/proto/gatehouse/directory/v1"
	"github.com/gatehouse-authz/gatehouse/userstore"
)

// directory is a real DirectoryService, served over loopback by
// startServer: records in maps, changes fanned out to every open
// WatchChanges stream.
type directory struct {
	directoryv1.UnimplementedDirectoryServiceServer

	mu       sync.Mutex
	users    map[string]bool
	apps     map[string]bool
	watchers map[chan *directoryv1.WatchChangesResponse]struct{}
	// behaviour for the error tests, keyed by id
	fail  map[string]error
	block map[string]bool

	calls atomic.Int64
}

func newDirectory() *directory {
	return &directory{
		users:    map[string]bool{"u-active": true, "u-inactive": false},
		apps:     map[string]bool{"app-active": true, "app-inactive": false},
		watchers: map[chan *directoryv1.WatchChangesResponse]struct{}{},
		fail: map[string]error{
			"bad-syntax": status.Error(codes.InvalidArgument, "not an id"),
			"broken":     status.Error(codes.Internal, "database on fire"),
			"empty":      nil, // answers without a record
		},
		block: map[string]bool{"slow": true},
	}
}

func (d *directory) answer(ctx context.Context, table map[string]bool, id string) (rec bool, active bool, err error) {
	d.calls.Add(1)
	d.mu.Lock()
	blocked := d.block[id]
	ferr, failing := d.fail[id]
	active, found := table[id]
	d.mu.Unlock()
	switch {
	case blocked:
		<-ctx.Done()
		return false, false, ctx.Err()
	case failing && ferr != nil:
		return false, false, ferr
	case failing:
		return false, false, nil
	case !found:
		return false, false, status.Error(codes.NotFound, "no such record")
	}
	return true, active, nil
}

func (d *directory) GetUser(ctx context.Context, req *directoryv1.GetUserRequest) (*directoryv1.GetUserResponse, error) {
	rec, active, err := d.answer(ctx, d.users, req.GetId())
	if err != nil || !rec {
		return &directoryv1.GetUserResponse{}, err
	}
	return &directoryv1.GetUserResponse{User: &directoryv1.User{Id: req.GetId(), Active: active}}, nil
}

func (d *directory) GetApplication(ctx context.Context, req *directoryv1.GetApplicationRequest) (*directoryv1.GetApplicationResponse, error) {
	rec, active, err := d.answer(ctx, d.apps, req.GetClientId())
	if err != nil || !rec {
		return &directoryv1.GetApplicationResponse{}, err
	}
	return &directoryv1.GetApplicationResponse{Application: &directoryv1.Application{ClientId: req.GetClientId(), Active: active}}, nil
}

func (d *directory) WatchChanges(_ *directoryv1.WatchChangesRequest, stream grpc.ServerStreamingServer[directoryv1.WatchChangesResponse]) error {
	ch := make(chan *directoryv1.WatchChangesResponse, 16)
	d.mu.Lock()
	d.watchers[ch] = struct{}{}
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.watchers, ch)
		d.mu.Unlock()
	}()
	// The protocol: headers first, as soon as the server watches.
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	for {
		select {
		case <-stream.Context().Done():
			return stream.Context().Err()
		case ev, ok := <-ch:
			if !ok {
				return status.Error(codes.Unavailable, "server going away")
			}
			if err := stream.Send(ev); err != nil {
				return err
			}
		}
	}
}

// setUser changes a user and tells the watchers.
func (d *directory) setUser(id string, active bool) {
	d.mu.Lock()
	d.users[id] = active
	d.mu.Unlock()
	d.send(&directoryv1.WatchChangesResponse{Event: &directoryv1.WatchChangesResponse_UserId{UserId: id}})
}

func (d *directory) send(ev *directoryv1.WatchChangesResponse) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for ch := range d.watchers {
		ch <- ev
	}
}

// endStreams ends every open WatchChanges stream with an error.
func (d *directory) endStreams() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for ch := range d.watchers {
		close(ch)
		delete(d.watchers, ch)
	}
}

func (d *directory) watching() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.watchers)
}

// server runs a directory on a loopback port.
type server struct {
	dir  *directory
	addr string
	opts []grpc.ServerOption
	srv  *grpc.Server
	done chan struct{}
}

func startServer(t testing.TB, d *directory, opts ...grpc.ServerOption) *server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{dir: d, addr: l.Addr().String(), opts: opts}
	s.serve(l)
	t.Cleanup(s.stop)
	return s
}

func (s *server) serve(l net.Listener) {
	s.srv = grpc.NewServer(s.opts...)
	directoryv1.RegisterDirectoryServiceServer(s.srv, s.dir)
	s.done = make(chan struct{})
	go func(srv *grpc.Server, done chan struct{}) {
		defer close(done)
		_ = srv.Serve(l)
	}(s.srv, s.done)
}

func (s *server) stop() {
	if s.srv != nil {
		s.srv.Stop()
		<-s.done
		s.srv = nil
	}
}

// restart stops the server and serves again on the same address.
func (s *server) restart(t testing.TB) {
	t.Helper()
	s.stop()
	var l net.Listener
	var err error
	for range 50 {
		if l, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listen again on %s: %v", s.addr, err)
	}
	s.serve(l)
}

func newOrigin(t testing.TB, opts Options) *Origin {
	t.Helper()
	o, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = o.Close() })
	return o
}

func lookup(t *testing.T, o *Origin, kind userstore.Kind, id string) (userstore.Status, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return o.Lookup(ctx, kind, id)
}

func TestLookup(t *testing.T) {
	d := newDirectory()
	s := startServer(t, d)
	o := newOrigin(t, Options{URL: "grpc://" + s.addr, Timeout: 5 * time.Second})
	cases := []struct {
		kind    userstore.Kind
		id      string
		want    userstore.Status
		invalid bool
	}{
		{userstore.User, "u-active", userstore.Active, false},
		{userstore.User, "u-inactive", userstore.Inactive, false},
		{userstore.User, "u-unknown", userstore.NotFound, false},
		{userstore.User, "bad-syntax", userstore.NotFound, false},
		{userstore.App, "app-active", userstore.Active, false},
		{userstore.App, "app-inactive", userstore.Inactive, false},
		{userstore.App, "u-active", userstore.NotFound, false}, // another table
		{userstore.App, "app-unknown", userstore.NotFound, false},
		{userstore.User, "empty", userstore.Inactive, true},
		{userstore.App, "empty", userstore.Inactive, true},
	}
	for _, c := range cases {
		got, err := lookup(t, o, c.kind, c.id)
		if c.invalid {
			if !errors.Is(err, userstore.ErrInvalidRecord) || errors.Is(err, userstore.ErrUnavailable) {
				t.Errorf("Lookup(%s, %q) error = %v, want ErrInvalidRecord only", c.kind, c.id, err)
			}
		} else if err != nil {
			t.Errorf("Lookup(%s, %q) error = %v", c.kind, c.id, err)
		}
		if got != c.want {
			t.Errorf("Lookup(%s, %q) = %v, want %v", c.kind, c.id, got, c.want)
		}
	}

	// Ids the protocol cannot carry never reach the server (a proto3
	// string must be UTF-8; sending one would fail as INTERNAL and count
	// as an outage).
	calls := d.calls.Load()
	for _, id := range []string{"", "bad\xff", strings.Repeat("x", MaxIDLength+1)} {
		if got, err := lookup(t, o, userstore.User, id); got != userstore.NotFound || err != nil {
			t.Errorf("Lookup(%.20q) = %v, %v; want NotFound", id, got, err)
		}
	}
	if n := d.calls.Load() - calls; n != 0 {
		t.Errorf("%d unsendable ids reached the server", n)
	}
	if _, err := lookup(t, o, userstore.Kind(7), "x"); err == nil {
		t.Error("unknown kind: no error")
	}

	// A server error is "cannot decide".
	if got, err := lookup(t, o, userstore.User, "broken"); got != userstore.NotFound || !errors.Is(err, userstore.ErrUnavailable) {
		t.Errorf("server error: Lookup = %v, %v; want NotFound, ErrUnavailable", got, err)
	}

	// The deadline: the server never answers "slow".
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	got, err := o.Lookup(ctx, userstore.User, "slow")
	if got != userstore.NotFound || !errors.Is(err, userstore.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("slow: Lookup = %v, %v; want NotFound, ErrUnavailable (deadline exceeded)", got, err)
	}
	t.Logf("slow: gave up after %v (deadline 200ms)", time.Since(start))
	o2 := newOrigin(t, Options{URL: "grpc://" + s.addr, Timeout: 200 * time.Millisecond})
	if _, err := o2.Lookup(context.Background(), userstore.User, "slow"); !errors.Is(err, userstore.ErrUnavailable) {
		t.Errorf("slow without a caller deadline: %v; want ErrUnavailable by Options.Timeout", err)
	}

	// The server gone.
	s.stop()
	if got, err := lookup(t, o, userstore.User, "u-active"); got != userstore.NotFound || !errors.Is(err, userstore.ErrUnavailable) {
		t.Errorf("server down: Lookup = %v, %v; want NotFound, ErrUnavailable", got, err)
	}
}

func TestNewRefuses(t *testing.T) {
	for _, u := range []string{
		"http://127.0.0.1:1",
		"grpc://127.0.0.1",
		"grpc://:99",
		"grpc://u:secret@127.0.0.1:1",
		"grpc://127.0.0.1:1/path",
		"grpc://127.0.0.1:1?x=y",
		"grpc//127.0.0.1:1",
		"",
	} {
		if _, err := New(Options{URL: u}); err == nil {
			t.Errorf("New(%q): no error", u)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("New(%q): error %q shows the password", u, err)
		}
	}
	if _, err := New(Options{URL: "grpc://127.0.0.1:1", CAFile: "/nonexistent"}); err == nil {
		t.Error("a CA file with grpc://: no error")
	}
	if _, err := New(Options{URL: "grpcs://127.0.0.1:1", CAFile: "/nonexistent"}); err == nil {
		t.Error("a missing CA file: no error")
	}
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{URL: "grpcs://127.0.0.1:1", CAFile: notPEM}); err == nil {
		t.Error("a CA file without PEM: no error")
	}
}

func TestTLS(t *testing.T) {
	caFile, serverCert := makeCerts(t)
	d := newDirectory()
	s := startServer(t, d, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS12})))
	_, port, _ := net.SplitHostPort(s.addr)

	o := newOrigin(t, Options{URL: "grpcs://localhost:" + port, CAFile: caFile})
	if got, err := lookup(t, o, userstore.User, "u-active"); err != nil || got != userstore.Active {
		t.Fatalf("grpcs with the CA: Lookup = %v, %v", got, err)
	}
	// Without the CA file the system roots do not know the test CA.
	untrusting := newOrigin(t, Options{URL: "grpcs://localhost:" + port, Timeout: 5 * time.Second})
	if got, err := lookup(t, untrusting, userstore.User, "u-active"); got != userstore.NotFound || !errors.Is(err, userstore.ErrUnavailable) {
		t.Errorf("grpcs without the CA: Lookup = %v, %v; want NotFound, ErrUnavailable", got, err)
	}
	// Plaintext to a TLS server fails too.
	plain := newOrigin(t, Options{URL: "grpc://" + s.addr, Timeout: 5 * time.Second})
	if _, err := lookup(t, plain, userstore.User, "u-active"); !errors.Is(err, userstore.ErrUnavailable) {
		t.Errorf("grpc:// to a TLS server: %v; want ErrUnavailable", err)
	}
}

// makeCerts writes a CA to a PEM file and returns it with a certificate it
// signed for localhost and 127.0.0.1.
func makeCerts(t testing.TB) (string, tls.Certificate) {
	t.Helper()
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "grpcorigin test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return caFile, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// events collects Watch's callbacks.
type events struct {
	changes chan string
	resets  chan struct{}
}

func watch(t *testing.T, o *Origin) *events {
	t.Helper()
	e := &events{changes: make(chan string, 100), resets: make(chan struct{}, 100)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- o.Watch(ctx,
			func(kind userstore.Kind, id string) { e.changes <- kind.String() + ":" + id },
			func() { e.resets <- struct{}{} })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Watch returned %v, want context.Canceled", err)
		}
	})
	return e
}

func (e *events) waitReset(t *testing.T, what string) {
	t.Helper()
	select {
	case <-e.resets:
	case c := <-e.changes:
		t.Fatalf("%s: change %q before the reset", what, c)
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: no reset", what)
	}
}

func (e *events) waitChange(t *testing.T, want string) {
	t.Helper()
	select {
	case c := <-e.changes:
		if c != want {
			t.Fatalf("change = %q, want %q", c, want)
		}
	case <-e.resets:
		t.Fatalf("reset while waiting for %q", want)
	case <-time.After(20 * time.Second):
		t.Fatalf("no change %q", want)
	}
}

func (e *events) none(t *testing.T) {
	t.Helper()
	select {
	case c := <-e.changes:
		t.Fatalf("unexpected change %q", c)
	case <-e.resets:
		t.Fatal("unexpected reset")
	default:
	}
}

// waitWatching waits until n streams are open on the server, so that an
// event sent next reaches them.
func waitWatching(t *testing.T, d *directory, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for d.watching() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d streams open, want %d", d.watching(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWatch(t *testing.T) {
	d := newDirectory()
	s := startServer(t, d)
	logs := &testkit.LogBuffer{}
	o := newOrigin(t, Options{URL: "grpc://" + s.addr, Logger: testkit.NewLogger(logs),
		Watch: WatchOptions{MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}})
	e := watch(t, o)
	e.waitReset(t, "first stream")
	waitWatching(t, d, 1)

	start := time.Now()
	d.setUser("u-active", false)
	e.waitChange(t, "user:u-active")
	t.Logf("change delivered %v after it was sent", time.Since(start))
	if got, err := lookup(t, o, userstore.User, "u-active"); err != nil || got != userstore.Inactive {
		t.Fatalf("after the change: Lookup = %v, %v", got, err)
	}
	d.send(&directoryv1.WatchChangesResponse{Event: &directoryv1.WatchChangesResponse_ClientId{ClientId: "app-active"}})
	e.waitChange(t, "app:app-active")

	// A reset event, an event of an unknown kind (none set) and an empty id
	// all purge.
	d.send(&directoryv1.WatchChangesResponse{Event: &directoryv1.WatchChangesResponse_Reset_{Reset_: &directoryv1.Reset{}}})
	e.waitReset(t, "reset event")
	d.send(&directoryv1.WatchChangesResponse{})
	e.waitReset(t, "unknown event")
	d.send(&directoryv1.WatchChangesResponse{Event: &directoryv1.WatchChangesResponse_UserId{}})
	e.waitReset(t, "empty id")
	e.none(t)

	// The server ends the stream: Watch opens another and purges.
	d.endStreams()
	e.waitReset(t, "stream ended")
	waitWatching(t, d, 1)
	d.setUser("u-inactive", true)
	e.waitChange(t, "user:u-inactive")

	// The server restarts: Watch reconnects (with backoff) and purges.
	s.restart(t)
	e.waitReset(t, "server restarted")
	waitWatching(t, d, 1)
	d.setUser("u-active", true)
	e.waitChange(t, "user:u-active")
	if !strings.Contains(logs.String(), "reconnecting") {
		t.Errorf("the lost stream was not logged: %s", logs.String())
	}
}

// A server without WatchChanges (UNIMPLEMENTED) is retried with backoff and
// never taken for a stream: no reset is reported.
func TestWatchUnimplemented(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	directoryv1.RegisterDirectoryServiceServer(srv, directoryv1.UnimplementedDirectoryServiceServer{})
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	logs := &testkit.LogBuffer{}
	o := newOrigin(t, Options{URL: "grpc://" + l.Addr().String(), Logger: testkit.NewLogger(logs),
		Watch: WatchOptions{MinBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond}})
	e := watch(t, o)
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(logs.String(), "reconnecting") < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("no retries logged: %s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.none(t)
	if !strings.Contains(logs.String(), "Unimplemented") {
		t.Errorf("the status was not logged: %s", logs.String())
	}
}
