package userstore_test

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/gatehouse-authz/gatehouse/internal/testkit/redistest"
	directoryv1 "github.com/gatehouse-authz/gatehouse/proto/gatehouse/directory/v1"
	"github.com/gatehouse-authz/gatehouse/userstore"
	"github.com/gatehouse-authz/gatehouse/userstore/grpcorigin"
)

// directoryService is a real DirectoryService served over loopback: users
// in a map, changes sent to every WatchChanges stream.
type directoryService struct {
	directoryv1.UnimplementedDirectoryServiceServer

	mu       sync.Mutex
	users    map[string]bool
	watchers map[chan *directoryv1.WatchChangesResponse]struct{}
	calls    atomic.Int64
}

func (d *directoryService) GetUser(_ context.Context, req *directoryv1.GetUserRequest) (*directoryv1.GetUserResponse, error) {
	d.calls.Add(1)
	d.mu.Lock()
	active, ok := d.users[req.GetId()]
	d.mu.Unlock()
	if !ok {
		return nil, status.Error(codes.NotFound, "no such user")
	}
	return &directoryv1.GetUserResponse{User: &directoryv1.User{Id: req.GetId(), Active: active}}, nil
}

func (d *directoryService) WatchChanges(_ *directoryv1.WatchChangesRequest, stream grpc.ServerStreamingServer[directoryv1.WatchChangesResponse]) error {
	ch := make(chan *directoryv1.WatchChangesResponse, 16)
	d.mu.Lock()
	d.watchers[ch] = struct{}{}
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.watchers, ch)
		d.mu.Unlock()
	}()
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	for {
		select {
		case <-stream.Context().Done():
			return stream.Context().Err()
		case ev := <-ch:
			if err := stream.Send(ev); err != nil {
				return err
			}
		}
	}
}

func (d *directoryService) send(ev *directoryv1.WatchChangesResponse) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for ch := range d.watchers {
		ch <- ev
	}
}

func (d *directoryService) setUser(id string, active bool) {
	d.mu.Lock()
	d.users[id] = active
	d.mu.Unlock()
	d.send(&directoryv1.WatchChangesResponse{Event: &directoryv1.WatchChangesResponse_UserId{UserId: id}})
}

// startDirectoryService serves d on a loopback port and returns its
// grpc:// URL.
func startDirectoryService(t testing.TB, d *directoryService) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	directoryv1.RegisterDirectoryServiceServer(srv, d)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return "grpc://" + l.Addr().String()
}

func openGRPC(t testing.TB, url string) *grpcorigin.Origin {
	t.Helper()
	o, err := grpcorigin.New(grpcorigin.Options{URL: url, Logger: quiet(),
		Watch: grpcorigin.WatchOptions{MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.Close() })
	return o
}

// TestOriginChainGRPC: the same layers in front of a gRPC directory
// service: a second replica is served from Redis, a change event revokes on
// both replicas, a reset event purges the in-process caches.
func TestOriginChainGRPC(t *testing.T) {
	svc := &directoryService{users: map[string]bool{"u-1": true, "u-2": true}, watchers: map[chan *directoryv1.WatchChangesResponse]struct{}{}}
	url := startDirectoryService(t, svc)
	rd := redistest.Start(t)
	long := replicaOptions{redis: rd, ttl: time.Hour, neg: time.Hour, rttl: time.Hour}
	oa, ob := openGRPC(t, url), openGRPC(t, url)
	long.follow = oa.Watch
	a := newReplica(t, oa, long)
	long.follow = ob.Watch
	b := newReplica(t, ob, long)

	want(t, a, userstore.User, "u-1", userstore.Active)
	want(t, a, userstore.User, "nobody", userstore.NotFound)
	want(t, b, userstore.User, "u-1", userstore.Active)
	want(t, b, userstore.User, "nobody", userstore.NotFound)
	if n := svc.calls.Load(); n != 2 {
		t.Fatalf("the directory service answered %d lookups, want 2 (replica B served from Redis)", n)
	}

	start := time.Now()
	svc.setUser("u-1", false)
	for _, r := range []*replica{a, b} {
		for r.lookup(t, userstore.User, "u-1") != userstore.Inactive {
			if time.Since(start) > time.Second {
				t.Fatal("a replica still answers active 1 s after the change event")
			}
			time.Sleep(time.Millisecond)
		}
	}
	t.Logf("change event: both replicas refuse after %v", time.Since(start))

	// A change the service does not announce, then a reset event: every
	// replica drops what it holds in process. (Redis entries expire by
	// their TTL: here the service's reset comes with the record gone from
	// Redis too, as after a TTL.)
	svc.mu.Lock()
	svc.users["u-2"] = false
	svc.mu.Unlock()
	want(t, a, userstore.User, "u-2", userstore.Inactive) // read now: inactive everywhere
	svc.mu.Lock()
	svc.users["u-2"] = true
	svc.mu.Unlock()
	rd.Client().Del(t.Context(), "gatehouse:user:u-2")
	want(t, a, userstore.User, "u-2", userstore.Inactive) // in-process still
	svc.send(&directoryv1.WatchChangesResponse{Event: &directoryv1.WatchChangesResponse_Reset_{Reset_: &directoryv1.Reset{}}})
	select {
	case <-a.resets:
	case <-time.After(watchdog):
		t.Fatal("no reset")
	}
	want(t, a, userstore.User, "u-2", userstore.Active)
}
