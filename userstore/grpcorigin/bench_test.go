package grpcorigin

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/gatehouse-authz/gatehouse/userstore"
)

// BenchmarkLookup is one GetUser of an active user over loopback TCP
// (plaintext HTTP/2) to a real gRPC server.
func BenchmarkLookup(b *testing.B) {
	s := startServer(b, newDirectory())
	o := newOrigin(b, Options{URL: "grpc://" + s.addr})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if got, err := o.Lookup(ctx, userstore.User, "u-active"); err != nil || got != userstore.Active {
			b.Fatalf("Lookup = %v, %v", got, err)
		}
	}
}

// BenchmarkLookupParallel is the same from GOMAXPROCS goroutines over the
// one connection.
func BenchmarkLookupParallel(b *testing.B) {
	s := startServer(b, newDirectory())
	o := newOrigin(b, Options{URL: "grpc://" + s.addr})
	b.ReportAllocs()
	b.ResetTimer() // not the server's start
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if got, err := o.Lookup(ctx, userstore.User, "u-active"); err != nil || got != userstore.Active {
				b.Errorf("Lookup = %v, %v", got, err)
				return
			}
		}
	})
}

// BenchmarkWatch is the revocation path: a change sent on the server's
// stream to Watch's callback.
func BenchmarkWatch(b *testing.B) {
	d := newDirectory()
	s := startServer(b, d)
	o := newOrigin(b, Options{URL: "grpc://" + s.addr, Logger: slog.New(slog.DiscardHandler)})
	changes := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- o.Watch(ctx, func(_ userstore.Kind, id string) { changes <- id }, func() {})
	}()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(20 * time.Second)
	for d.watching() != 1 {
		if time.Now().After(deadline) {
			b.Fatal("Watch did not open a stream")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for b.Loop() {
		d.setUser("u-active", true)
		<-changes
	}
}
