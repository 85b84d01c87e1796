package userstore_test

// The directory of record behind Redis, with real servers: PostgreSQL with
// Meet's tables and gatehouse's trigger, redis-server, and a gRPC directory
// service over loopback. Each "replica" is an OriginChain built as the
// server builds it (in-process cache → Redis behind its circuits → the
// origin behind its circuit), following the origin's change notifications.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-authz/gatehouse/internal/testkit"
	"github.com/gatehouse-authz/gatehouse/internal/testkit/pgtest"
	"github.com/gatehouse-authz/gatehouse/internal/testkit/redistest"
	"github.com/gatehouse-authz/gatehouse/userstore"
	"github.com/gatehouse-authz/gatehouse/userstore/pgorigin"
	"github.com/gatehouse-authz/gatehouse/userstore/redisstore"
)

// meetSchema is Meet's two tables as its migrations define them, reduced
// to what gatehouse reads plus a column the least-privilege role cannot.
const meetSchema = `
CREATE TABLE meet_user (
	id uuid PRIMARY KEY,
	sub varchar(255) UNIQUE,
	email text NOT NULL DEFAULT '',
	is_active boolean NOT NULL DEFAULT true
);
CREATE TABLE meet_application (
	id serial PRIMARY KEY,
	client_id varchar(100) NOT NULL UNIQUE,
	is_active boolean NOT NULL DEFAULT true
);
CREATE ROLE gatehouse LOGIN PASSWORD 'reader-secret';
GRANT SELECT (id, is_active, sub) ON meet_user TO gatehouse;
GRANT SELECT (client_id, is_active) ON meet_application TO gatehouse;
`

const (
	readerPassword = "reader-secret"
	userA          = "7c9e6679-7425-40de-944b-e07fc1f90a01"
	userB          = "7c9e6679-7425-40de-944b-e07fc1f90a02"
	userOff        = "7c9e6679-7425-40de-944b-e07fc1f90a03"
	userRevoked    = "7c9e6679-7425-40de-944b-e07fc1f90a04"
	userLegacy     = "7c9e6679-7425-40de-944b-e07fc1f90a05"
	userStale      = "7c9e6679-7425-40de-944b-e07fc1f90a06"
	userUnknown    = "7c9e6679-7425-40de-944b-e07fc1f90aff"
	// watchdog bounds every wait: far above anything under test, it only
	// catches hangs.
	watchdog = 30 * time.Second
)

const meetData = `
INSERT INTO meet_user (id, email, is_active) VALUES
	('` + userA + `', 'a@example.org', true),
	('` + userB + `', 'b@example.org', true),
	('` + userOff + `', 'off@example.org', false),
	('` + userRevoked + `', 'r@example.org', true),
	('` + userLegacy + `', 'l@example.org', false),
	('` + userStale + `', 's@example.org', true);
INSERT INTO meet_application (client_id, is_active) VALUES ('app-on', true), ('app-off', false);
`

// startMeet starts PostgreSQL with Meet's tables, its data and gatehouse's
// revocation trigger.
func startMeet(t testing.TB) *pgtest.Server {
	t.Helper()
	pg := pgtest.Start(t)
	pg.Exec(t, meetSchema)
	pg.Exec(t, meetData)
	trigger, err := pgorigin.TriggerSQL(pgorigin.TriggerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pg.Exec(t, trigger)
	return pg
}

// openPG opens a pgorigin.Origin as the least-privilege role.
func openPG(t testing.TB, pg *pgtest.Server) *pgorigin.Origin {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), watchdog)
	defer cancel()
	o, err := pgorigin.New(ctx, pgorigin.Options{
		URL:      pg.URLFor("gatehouse", ""),
		Password: readerPassword,
		Listen:   pgorigin.ListenOptions{MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond},
		Logger:   quiet(),
	})
	if err != nil {
		t.Fatalf("pgorigin.New: %v", err)
	}
	t.Cleanup(o.Close)
	return o
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// counting counts the lookups that reach the origin.
type counting struct {
	userstore.Directory
	n atomic.Int64
}

func (c *counting) Lookup(ctx context.Context, kind userstore.Kind, id string) (userstore.Status, error) {
	c.n.Add(1)
	return c.Directory.Lookup(ctx, kind, id)
}

// follow is the change feed of an origin: pgorigin.Origin.Listen or
// grpcorigin.Origin.Watch.
type follow func(ctx context.Context, onChange func(userstore.Kind, string), onReset func()) error

type replicaOptions struct {
	redis     *redistest.Server // nil: no Redis
	follow    follow            // nil: no change notifications
	clock     *testkit.Clock    // nil: real time
	ttl, neg  time.Duration     // in-process TTLs
	rttl      time.Duration     // Redis TTLs (positive and negative)
	stale     time.Duration
	cooldown  time.Duration
	redisWait time.Duration // Redis operations' timeout
	uncounted bool          // no outcome recording (benchmarks: it allocates)
}

// replica is one gatehouse replica's directory.
type replica struct {
	*userstore.OriginChain
	origin   *counting
	outcomes *outcomes
	resets   chan struct{}
	redis    *redisstore.Store
}

type outcomes struct {
	mu sync.Mutex
	n  map[string]int
}

func (o *outcomes) record(layer, outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n == nil {
		o.n = map[string]int{}
	}
	o.n[layer+"/"+outcome]++
}

func (o *outcomes) get(k string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n[k]
}

// newReplica builds the layers in front of origin as the server does.
func newReplica(t testing.TB, origin userstore.Directory, opts replicaOptions) *replica {
	t.Helper()
	now := time.Now
	if opts.clock != nil {
		now = opts.clock.Now
	}
	r := &replica{origin: &counting{Directory: origin}, outcomes: &outcomes{}, resets: make(chan struct{}, 64)}
	record := r.outcomes.record
	if opts.uncounted {
		record = nil
	}
	originCircuit := userstore.NewCircuit(r.origin, userstore.CircuitOptions{
		Name: "origin", Cooldown: opts.cooldown, Now: now, Logger: quiet(),
	})
	rt := userstore.ReadThroughOptions{
		TTL: opts.rttl, NegativeTTL: opts.rttl, Now: now, Logger: quiet(), OnLookup: record,
	}
	var shared userstore.SharedCache
	if opts.redis != nil {
		client, err := redisstore.NewClient(opts.redis.URL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = client.Close() })
		wait := opts.redisWait
		if wait == 0 {
			wait = 2 * time.Second // generous: -race on a busy machine
		}
		r.redis = redisstore.New(client, redisstore.Options{Timeout: wait})
		rt.Circuits = userstore.NewCircuits(r.redis, r.redis.Partition, userstore.CircuitOptions{
			Name: "redis", Cooldown: opts.cooldown, Now: now, Logger: quiet(),
		})
		shared = r.redis.OriginCache()
	}
	r.OriginChain = userstore.NewOriginChain(originCircuit, shared, userstore.OriginChainOptions{
		Cache: userstore.CacheOptions{
			TTL: opts.ttl, NegativeTTL: opts.neg, StaleIfError: opts.stale, Now: now,
			Logger: quiet(), OnLookup: record,
		},
		ReadThrough: rt,
	})
	if opts.follow != nil {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = opts.follow(ctx, func(kind userstore.Kind, id string) {
				if err := r.Changed(ctx, kind, id); err != nil {
					t.Logf("replica: %v", err)
				}
			}, func() {
				r.Reset()
				select {
				case r.resets <- struct{}{}:
				default:
				}
			})
		}()
		t.Cleanup(func() { cancel(); <-done })
		// The first reset says the feed is established.
		select {
		case <-r.resets:
		case <-time.After(watchdog):
			t.Fatal("the change feed did not start")
		}
	}
	return r
}

func (r *replica) lookup(t testing.TB, kind userstore.Kind, id string) userstore.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), watchdog)
	defer cancel()
	st, err := r.Lookup(ctx, kind, id)
	if err != nil {
		t.Fatalf("Lookup(%s, %s): %v", kind, id, err)
	}
	return st
}

func want(t testing.TB, r *replica, kind userstore.Kind, id string, st userstore.Status) {
	t.Helper()
	if got := r.lookup(t, kind, id); got != st {
		t.Fatalf("Lookup(%s, %s) = %s, want %s", kind, id, got, st)
	}
}

// TestOriginChainPostgres runs against one PostgreSQL (starting one takes
// seconds): its subtests share it, and the one that stops it runs last.
func TestOriginChainPostgres(t *testing.T) {
	pg := startMeet(t)
	t.Run("SecondReplicaServedFromRedis", func(t *testing.T) { testSecondReplica(t, pg) })
	t.Run("UnknownCachedNegatively", func(t *testing.T) { testNegative(t, pg) })
	t.Run("RecordsOfRedisDirectoryDoNotShadowOrigin", func(t *testing.T) { testLegacyRecord(t, pg) })
	t.Run("RevocationOnTwoReplicas", func(t *testing.T) { testRevocation(t, pg) })
	t.Run("RedisKilled", func(t *testing.T) { testRedisKilled(t, pg) })
	t.Run("PostgresKilled", func(t *testing.T) { testPostgresKilled(t, pg) })
}

func testSecondReplica(t *testing.T, pg *pgtest.Server) {
	rd := redistest.Start(t)
	a := newReplica(t, openPG(t, pg), replicaOptions{redis: rd})
	b := newReplica(t, openPG(t, pg), replicaOptions{redis: rd})

	want(t, a, userstore.User, userA, userstore.Active)
	want(t, a, userstore.App, "app-on", userstore.Active)
	want(t, a, userstore.User, userOff, userstore.Inactive)
	if n := a.origin.n.Load(); n != 3 {
		t.Fatalf("replica A asked Postgres %d times, want 3", n)
	}
	raw := rd.Client()
	ctx := t.Context()
	key := "gatehouse:user:" + userA
	if got := raw.HGetAll(ctx, key).Val(); got["active"] != "1" || got["origin"] != "found" {
		t.Fatalf("Redis holds %v for the active user", got)
	}
	if ttl := raw.PTTL(ctx, key).Val(); ttl <= 0 || ttl > userstore.DefaultSharedTTL {
		t.Fatalf("TTL %s, want in (0, %s]", ttl, userstore.DefaultSharedTTL)
	}
	if ttl := raw.PTTL(ctx, "gatehouse:user:"+userOff).Val(); ttl <= 0 || ttl > userstore.DefaultSharedNegativeTTL {
		t.Fatalf("inactive user's TTL %s, want in (0, %s]", ttl, userstore.DefaultSharedNegativeTTL)
	}

	// Replica B: every answer from Redis, Postgres untouched.
	want(t, b, userstore.User, userA, userstore.Active)
	want(t, b, userstore.App, "app-on", userstore.Active)
	want(t, b, userstore.User, userOff, userstore.Inactive)
	want(t, b, userstore.User, userA, userstore.Active) // in-process now
	if n := b.origin.n.Load(); n != 0 {
		t.Fatalf("replica B asked Postgres %d times, want 0 (served from Redis)", n)
	}
	if hits, cached := b.outcomes.get("redis/hit"), b.outcomes.get("cache/hit"); hits != 3 || cached != 1 {
		t.Fatalf("replica B outcomes %v: want 3 Redis hits and 1 in-process hit", b.outcomes.n)
	}
}

func testNegative(t *testing.T, pg *pgtest.Server) {
	rd := redistest.Start(t)
	a := newReplica(t, openPG(t, pg), replicaOptions{redis: rd})
	b := newReplica(t, openPG(t, pg), replicaOptions{redis: rd})
	for _, id := range []string{userUnknown, "not-a-uuid"} {
		want(t, a, userstore.User, id, userstore.NotFound)
		want(t, b, userstore.User, id, userstore.NotFound)
		got := rd.Client().HGetAll(t.Context(), "gatehouse:user:"+id).Val()
		if got["origin"] != "absent" || got["active"] != "0" {
			t.Fatalf("%s: Redis holds %v, want a cached NotFound", id, got)
		}
		if ttl := rd.Client().PTTL(t.Context(), "gatehouse:user:"+id).Val(); ttl <= 0 || ttl > userstore.DefaultSharedNegativeTTL {
			t.Fatalf("%s: TTL %s", id, ttl)
		}
	}
	want(t, a, userstore.App, "no-such-app", userstore.NotFound)
	want(t, b, userstore.App, "no-such-app", userstore.NotFound)
	if n := b.origin.n.Load(); n != 0 {
		t.Fatalf("replica B asked Postgres %d times for unknown records, want 0", n)
	}
}

// A record written when Redis was the directory (active there) must not be
// served: the origin says the user is inactive.
func testLegacyRecord(t *testing.T, pg *pgtest.Server) {
	rd := redistest.Start(t)
	a := newReplica(t, openPG(t, pg), replicaOptions{redis: rd})
	if err := a.redis.Put(t.Context(), userstore.User, userstore.Record{ID: userLegacy, Active: true}); err != nil {
		t.Fatal(err)
	}
	want(t, a, userstore.User, userLegacy, userstore.Inactive)
	if got := rd.Client().HGetAll(t.Context(), "gatehouse:user:"+userLegacy).Val(); got["active"] != "0" || got["origin"] != "found" {
		t.Fatalf("the old record was not replaced by the origin's answer: %v", got)
	}
}

// testRevocation deactivates a user in Postgres while two replicas have it
// cached (in process and in Redis, with TTLs of an hour): the trigger's
// notification must get it refused on both within a second.
func testRevocation(t *testing.T, pg *pgtest.Server) {
	rd := redistest.Start(t)
	long := replicaOptions{redis: rd, ttl: time.Hour, neg: time.Hour, rttl: time.Hour}
	oa, ob := openPG(t, pg), openPG(t, pg)
	long.follow = oa.Listen
	a := newReplica(t, oa, long)
	long.follow = ob.Listen
	b := newReplica(t, ob, long)

	want(t, a, userstore.User, userRevoked, userstore.Active)
	want(t, b, userstore.User, userRevoked, userstore.Active)
	if n := b.origin.n.Load(); n != 0 {
		t.Fatalf("replica B asked Postgres %d times, want 0", n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), watchdog)
	defer cancel()
	conn, err := pgx.Connect(ctx, pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())

	for _, step := range []struct {
		active bool
		want   userstore.Status
	}{{false, userstore.Inactive}, {true, userstore.Active}} {
		start := time.Now()
		if _, err := conn.Exec(ctx, "UPDATE meet_user SET is_active = $1 WHERE id = $2", step.active, userRevoked); err != nil {
			t.Fatal(err)
		}
		committed := time.Since(start)
		var wg sync.WaitGroup
		took := make([]time.Duration, 2)
		for i, r := range []*replica{a, b} {
			wg.Go(func() {
				for {
					if r.lookup(t, userstore.User, userRevoked) == step.want {
						took[i] = time.Since(start)
						return
					}
					if time.Since(start) > time.Second {
						took[i] = -1
						return
					}
					time.Sleep(time.Millisecond)
				}
			})
		}
		wg.Wait()
		for i, d := range took {
			if d < 0 {
				t.Fatalf("replica %c still answers the old status 1 s after is_active = %v was committed", 'A'+i, step.active)
			}
		}
		t.Logf("is_active = %v: UPDATE committed in %v; answered %s by replica A after %v, by replica B after %v",
			step.active, committed, step.want, took[0], took[1])
	}
	if got := rd.Client().HGet(t.Context(), "gatehouse:user:"+userRevoked, "active").Val(); got == "0" {
		t.Fatal("Redis still holds the deactivated answer after the reactivation")
	}
}

// testRedisKilled: with Redis gone, lookups go straight to the origin
// (behind Redis's circuit) and revocations still apply in process; when
// Redis is back, the pending deletions are done.
func testRedisKilled(t *testing.T, pg *pgtest.Server) {
	rd := redistest.Start(t)
	o := openPG(t, pg)
	a := newReplica(t, o, replicaOptions{redis: rd, follow: o.Listen, ttl: time.Minute,
		redisWait: 300 * time.Millisecond, cooldown: 100 * time.Millisecond})
	want(t, a, userstore.User, userB, userstore.Active) // cached in Redis
	rd.Kill()

	before := a.origin.n.Load()
	want(t, a, userstore.User, userA, userstore.Active)
	want(t, a, userstore.User, userOff, userstore.Inactive)
	want(t, a, userstore.User, userUnknown, userstore.NotFound)
	want(t, a, userstore.App, "app-off", userstore.Inactive)
	if n := a.origin.n.Load() - before; n != 4 {
		t.Fatalf("Redis down: the origin answered %d of 4 lookups", n)
	}
	if a.outcomes.get("redis/error") == 0 {
		t.Fatalf("outcomes %v: no Redis error counted", a.outcomes.n)
	}
	// More lookups than the circuit's threshold: it opens, and lookups
	// still get the origin's answers.
	for range 2 * userstore.DefaultCircuitThreshold {
		a.Reset()
		want(t, a, userstore.User, userA, userstore.Active)
	}

	// A revocation while Redis is down: refused at once in process (the
	// user is cached there, for a minute); the Redis deletion waits for
	// Redis.
	want(t, a, userstore.User, userB, userstore.Active)
	pg.Exec(t, "UPDATE meet_user SET is_active = false WHERE id = '"+userB+"'")
	deadline := time.Now().Add(watchdog)
	for a.lookup(t, userstore.User, userB) != userstore.Inactive {
		if time.Now().After(deadline) {
			t.Fatal("the revocation was not applied while Redis is down")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if a.ReadThrough().Pending() == 0 {
		t.Fatal("the failed Redis deletion is not pending")
	}
	rd.Restart()
	for a.ReadThrough().RetryPending(t.Context()) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the pending deletion was never done after Redis came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	pg.Exec(t, "UPDATE meet_user SET is_active = true WHERE id = '"+userB+"'")
}

// testPostgresKilled: the origin down → the cached answer while
// stale-if-error allows, then an error (503, never an allow), then
// recovery without a restart once Postgres is back.
func testPostgresKilled(t *testing.T, pg *pgtest.Server) {
	rd := redistest.Start(t)
	clock := testkit.NewClock(time.Now())
	a := newReplica(t, openPG(t, pg), replicaOptions{
		redis: rd, clock: clock, ttl: time.Second, neg: time.Second, stale: time.Minute, cooldown: time.Second,
	})
	want(t, a, userstore.User, userStale, userstore.Active)
	// Redis's entry gone (expired), the in-process one expired.
	rd.Client().Del(t.Context(), "gatehouse:user:"+userStale)
	clock.Advance(2 * time.Second)
	pg.Stop()

	want(t, a, userstore.User, userStale, userstore.Active)
	if a.outcomes.get("cache/stale") != 1 {
		t.Fatalf("outcomes %v: want one stale answer", a.outcomes.n)
	}
	clock.Advance(time.Minute)
	st, err := a.Lookup(t.Context(), userstore.User, userStale)
	if !errors.Is(err, userstore.ErrUnavailable) || st == userstore.Active {
		t.Fatalf("Postgres down past stale-if-error: %s, %v; want an unavailable error", st, err)
	}
	// An unknown record is no allow either.
	if st, err := a.Lookup(t.Context(), userstore.User, userUnknown); err == nil || st == userstore.Active {
		t.Fatalf("unknown user with Postgres down: %s, %v", st, err)
	}

	pg.Restart()
	deadline := time.Now().Add(watchdog)
	for {
		clock.Advance(2 * time.Second) // past the origin circuit's cooldown: a trial
		st, err := a.Lookup(t.Context(), userstore.User, userStale)
		if err == nil && st == userstore.Active {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after Postgres came back: %s, %v", st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
