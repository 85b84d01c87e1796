package userstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-authz/gatehouse/internal/testkit/redistest"
	directoryv1 "github.com/gatehouse-authz/gatehouse/proto/gatehouse/directory/v1"
	"github.com/gatehouse-authz/gatehouse/userstore"
)

// BenchmarkOriginChain times one lookup answered by each layer of the
// chain, against real servers over loopback: the in-process cache, Redis
// (the in-process cache off), and the origin (both caches off: a Redis miss,
// then PostgreSQL or the gRPC service; or PostgreSQL alone without Redis).
func BenchmarkOriginChain(b *testing.B) {
	pg := startMeet(b)
	rd := redistest.Start(b)
	svc := &directoryService{users: map[string]bool{"u-1": true}, watchers: map[chan *directoryv1.WatchChangesResponse]struct{}{}}
	grpcURL := startDirectoryService(b, svc)
	pgo, gro := openPG(b, pg), openGRPC(b, grpcURL)

	for _, bc := range []struct {
		name   string
		origin userstore.Directory
		opts   replicaOptions
		id     string
	}{
		{"in-process-hit", pgo, replicaOptions{redis: rd}, userA},
		{"redis-hit", pgo, replicaOptions{redis: rd, ttl: -1, neg: -1}, userA},
		{"origin-postgres-after-redis-miss", pgo, replicaOptions{redis: rd, ttl: -1, neg: -1, rttl: -1}, userA},
		{"origin-postgres-no-redis", pgo, replicaOptions{ttl: -1, neg: -1}, userA},
		{"origin-grpc-after-redis-miss", gro, replicaOptions{redis: rd, ttl: -1, neg: -1, rttl: -1}, "u-1"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			rd.Client().FlushAll(context.Background())
			bc.opts.uncounted = true
			r := newReplica(b, bc.origin, bc.opts)
			ctx := context.Background()
			if st, err := r.Lookup(ctx, userstore.User, bc.id); err != nil || st != userstore.Active {
				b.Fatalf("warm-up: %s, %v", st, err)
			}
			before := r.origin.n.Load()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if st, err := r.Lookup(ctx, userstore.User, bc.id); err != nil || st != userstore.Active {
					b.Fatalf("%s, %v", st, err)
				}
			}
			b.StopTimer()
			// Each layer answered what it is named after.
			asked := r.origin.n.Load() - before
			if origin := bc.opts.rttl < 0 || bc.opts.redis == nil; origin != (asked > 0) {
				b.Fatalf("the origin answered %d lookups", asked)
			}
		})
	}
}

// BenchmarkRevocationTwoReplicas times a change of is_active in PostgreSQL,
// from the UPDATE being sent to both replicas answering the new status,
// with every cache TTL at an hour: the trigger's notification is what
// revokes. One op is one UPDATE (deactivations and reactivations in turn).
func BenchmarkRevocationTwoReplicas(b *testing.B) {
	pg := startMeet(b)
	rd := redistest.Start(b)
	long := replicaOptions{redis: rd, ttl: time.Hour, neg: time.Hour, rttl: time.Hour, uncounted: true}
	oa, ob := openPG(b, pg), openPG(b, pg)
	long.follow = oa.Listen
	a := newReplica(b, oa, long)
	long.follow = ob.Listen
	r2 := newReplica(b, ob, long)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.URL())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	active := true
	want(b, a, userstore.User, userB, userstore.Active)
	want(b, r2, userstore.User, userB, userstore.Active)
	b.ResetTimer()
	for b.Loop() {
		active = !active
		wantSt := userstore.Inactive
		if active {
			wantSt = userstore.Active
		}
		if _, err := conn.Exec(ctx, "UPDATE meet_user SET is_active = $1 WHERE id = $2", active, userB); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(watchdog)
		for _, r := range []*replica{a, r2} {
			for r.lookup(b, userstore.User, userB) != wantSt {
				if time.Now().After(deadline) {
					b.Fatal("a replica never saw the change")
				}
				time.Sleep(50 * time.Microsecond)
			}
		}
	}
	b.StopTimer()
	if !active {
		if _, err := conn.Exec(ctx, "UPDATE meet_user SET is_active = true WHERE id = $1", userB); err != nil {
			b.Fatal(err)
		}
	}
}
