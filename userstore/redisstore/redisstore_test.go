package redisstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-authz/gatehouse/internal/testkit/redistest"
	"github.com/gatehouse-authz/gatehouse/userstore"
)

const (
	uid = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
	// watchdog bounds every wait in these tests; it is far above any
	// timeout under test, so it only catches hangs.
	watchdog = 10 * time.Second
)

// relaxed is for stores whose timeout is not under test: the suite runs
// under -race on busy machines, where 200 ms can pass before a reply.
var relaxed = Options{Timeout: 5 * time.Second}

// setup starts a Redis and returns it with a gatehouse client (built by
// NewClient, as the service builds it) and a context bounded by the watchdog.
func setup(t *testing.T) (*redistest.Server, redis.UniversalClient, context.Context) {
	t.Helper()
	srv := redistest.Start(t)
	client, err := NewClient(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), watchdog)
	t.Cleanup(cancel)
	return srv, client, ctx
}

func wantStatus(t *testing.T, s *Store, ctx context.Context, kind userstore.Kind, id string, want userstore.Status) {
	t.Helper()
	got, err := s.Lookup(ctx, kind, id)
	if err != nil {
		t.Fatalf("Lookup(%s, %q): %v", kind, id, err)
	}
	if got != want {
		t.Fatalf("Lookup(%s, %q) = %s, want %s", kind, id, got, want)
	}
}

func TestLookupValues(t *testing.T) {
	srv, client, ctx := setup(t)
	raw := srv.Client()
	for key, val := range map[string]string{
		"gatehouse:user:active":   "1",
		"gatehouse:user:inactive": "0",
		"gatehouse:user:garbage":  "yes",
		"gatehouse:user:true":     "true",
		"gatehouse:user:spaces":   " 1",
		"gatehouse:app:meet-web":  "1",
	} {
		if err := raw.HSet(ctx, key, "active", val).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := raw.HSet(ctx, "gatehouse:user:noactive", "email", "a@example.com").Err(); err != nil {
		t.Fatal(err)
	}
	s := New(client, relaxed)
	wantStatus(t, s, ctx, userstore.User, "active", userstore.Active)
	wantStatus(t, s, ctx, userstore.User, "inactive", userstore.Inactive)
	wantStatus(t, s, ctx, userstore.User, "missing", userstore.NotFound)
	wantStatus(t, s, ctx, userstore.User, "", userstore.NotFound)
	// Records no writer should produce fail closed, as invalid records:
	// Inactive, with an error that is not an outage.
	for _, id := range []string{"garbage", "true", "spaces", "noactive"} {
		wantInvalid(t, s, ctx, userstore.User, id)
	}
	// Kinds live under different keys.
	wantStatus(t, s, ctx, userstore.App, "meet-web", userstore.Active)
	wantStatus(t, s, ctx, userstore.User, "meet-web", userstore.NotFound)
	wantStatus(t, s, ctx, userstore.App, "active", userstore.NotFound)

	if _, err := s.Lookup(ctx, userstore.Kind(7), "active"); err == nil {
		t.Fatal("unknown kind: want an error")
	}
}

// TestLookupWrongTypeFailsClosed: a key of another type is an invalid
// record (denied, that record alone), not an outage: it must not wrap
// ErrUnavailable, or the circuit in front counts it against every user.
func TestLookupWrongTypeFailsClosed(t *testing.T) {
	srv, client, ctx := setup(t)
	for key, set := range map[string]func() error{
		"gatehouse:user:str":  func() error { return srv.Client().Set(ctx, "gatehouse:user:str", "1", 0).Err() },
		"gatehouse:user:list": func() error { return srv.Client().RPush(ctx, "gatehouse:user:list", "1").Err() },
	} {
		if err := set(); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
	}
	s := New(client, relaxed)
	wantInvalid(t, s, ctx, userstore.User, "str")
	wantInvalid(t, s, ctx, userstore.User, "list")
	if _, _, err := s.Get(ctx, userstore.User, "str"); !errors.Is(err, userstore.ErrInvalidRecord) || errors.Is(err, userstore.ErrUnavailable) {
		t.Fatalf("Get of a string key: %v; want ErrInvalidRecord only", err)
	}
}

// wantInvalid checks that a lookup answers Inactive with ErrInvalidRecord,
// and not ErrUnavailable.
func wantInvalid(t *testing.T, s *Store, ctx context.Context, kind userstore.Kind, id string) {
	t.Helper()
	st, err := s.Lookup(ctx, kind, id)
	if st != userstore.Inactive || !errors.Is(err, userstore.ErrInvalidRecord) || errors.Is(err, userstore.ErrUnavailable) {
		t.Fatalf("Lookup(%s, %q) = %s, %v; want inactive and ErrInvalidRecord, not ErrUnavailable", kind, id, st, err)
	}
	if strings.Contains(err.Error(), id) {
		t.Errorf("the error quotes the record's id: %v", err)
	}
}

func TestPrefix(t *testing.T) {
	srv, client, ctx := setup(t)
	raw := srv.Client()
	if err := raw.HSet(ctx, "tenant1:user:"+uid, "active", "1").Err(); err != nil {
		t.Fatal(err)
	}
	if err := raw.HSet(ctx, "gatehouse:user:"+uid, "active", "0").Err(); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, New(client, Options{Prefix: "tenant1:"}), ctx, userstore.User, uid, userstore.Active)
	wantStatus(t, New(client, relaxed), ctx, userstore.User, uid, userstore.Inactive)
	wantStatus(t, New(client, Options{Prefix: "other:"}), ctx, userstore.User, uid, userstore.NotFound)

	s := New(client, Options{Prefix: "tenant1:"})
	if k, _ := s.Key(userstore.App, "meet"); k != "tenant1:app:meet" {
		t.Fatalf("Key = %q", k)
	}
	if s.InvalidationChannel() != "tenant1:invalidate" {
		t.Fatalf("channel = %q", s.InvalidationChannel())
	}
}

func TestPutGetDelete(t *testing.T) {
	srv, client, ctx := setup(t)
	s := New(client, relaxed)
	sub := srv.Client().Subscribe(ctx, s.InvalidationChannel())
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil { // subscription confirmed
		t.Fatal(err)
	}
	wantMsg := func(want string) {
		t.Helper()
		m, err := sub.ReceiveMessage(ctx)
		if err != nil {
			t.Fatalf("waiting for %q: %v", want, err)
		}
		if m.Payload != want {
			t.Fatalf("invalidation = %q, want %q", m.Payload, want)
		}
	}

	if err := s.Put(ctx, userstore.User, userstore.Record{ID: uid, Active: true, Email: "ann@example.com"}); err != nil {
		t.Fatal(err)
	}
	wantMsg("user:" + uid)
	wantStatus(t, s, ctx, userstore.User, uid, userstore.Active)
	r, ok, err := s.Get(ctx, userstore.User, uid)
	if err != nil || !ok || r != (userstore.Record{ID: uid, Active: true, Email: "ann@example.com"}) {
		t.Fatalf("Get = %+v, %v, %v", r, ok, err)
	}
	// The documented schema, readable by any client.
	if m, err := srv.Client().HGetAll(ctx, "gatehouse:user:"+uid).Result(); err != nil || m["active"] != "1" || m["email"] != "ann@example.com" {
		t.Fatalf("raw hash = %v, %v", m, err)
	}

	if err := s.Put(ctx, userstore.User, userstore.Record{ID: uid, Active: false}); err != nil {
		t.Fatal(err)
	}
	wantMsg("user:" + uid)
	wantStatus(t, s, ctx, userstore.User, uid, userstore.Inactive)
	if r, _, _ := s.Get(ctx, userstore.User, uid); r.Email != "" || r.Active {
		t.Fatalf("after Put without email: %+v, want email removed and inactive", r)
	}

	if err := s.Put(ctx, userstore.App, userstore.Record{ID: "meet-web", Active: true}); err != nil {
		t.Fatal(err)
	}
	wantMsg("app:meet-web")

	if err := s.Delete(ctx, userstore.User, uid); err != nil {
		t.Fatal(err)
	}
	wantMsg("user:" + uid)
	wantStatus(t, s, ctx, userstore.User, uid, userstore.NotFound)
	if _, ok, err := s.Get(ctx, userstore.User, uid); ok || err != nil {
		t.Fatalf("Get after Delete = %v, %v", ok, err)
	}
	wantStatus(t, s, ctx, userstore.App, "meet-web", userstore.Active)

	if err := s.Put(ctx, userstore.User, userstore.Record{ID: ""}); err == nil {
		t.Fatal("Put with an empty id: want an error")
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestRedisKilledFailsClosed(t *testing.T) {
	srv, client, ctx := setup(t)
	if err := New(client, relaxed).Put(ctx, userstore.User, userstore.Record{ID: uid, Active: true}); err != nil {
		t.Fatal(err)
	}
	s := New(client, Options{Timeout: 300 * time.Millisecond})
	srv.Kill()
	for i := range 3 { // the pooled connection and fresh dials both fail
		st, err := s.Lookup(ctx, userstore.User, uid)
		if err == nil || st == userstore.Active || !errors.Is(err, userstore.ErrUnavailable) {
			t.Fatalf("lookup %d with Redis down = %s, %v; want ErrUnavailable, never Active", i, st, err)
		}
	}
	if err := s.Ping(ctx); !errors.Is(err, userstore.ErrUnavailable) {
		t.Fatalf("Ping with Redis down: %v", err)
	}
	if _, _, err := s.Get(ctx, userstore.User, uid); !errors.Is(err, userstore.ErrUnavailable) {
		t.Fatalf("Get with Redis down: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the watchdog expired: lookups were not bounded by Timeout")
	}

	srv.Restart() // empty dataset: persistence is off
	wantStatus(t, New(client, relaxed), ctx, userstore.User, uid, userstore.NotFound)
}

// A hung Redis (SIGSTOP) keeps connections open and never answers: only
// deadlines end a lookup. The client's own read timeout is set far above the
// watchdog, so passing proves that Options.Timeout / the caller's deadline
// reached the socket.
func TestHungRedisHonoursDeadlines(t *testing.T) {
	srv, _, ctx := setup(t)
	client, err := NewClient(srv.URL() + "?read_timeout=60s&write_timeout=60s")
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := client.HSet(ctx, "gatehouse:user:"+uid, "active", "1").Err(); err != nil {
		t.Fatal(err)
	}
	srv.Pause()
	defer srv.Resume()

	t.Run("store timeout", func(t *testing.T) {
		s := New(client, Options{Timeout: 100 * time.Millisecond})
		st, err := s.Lookup(ctx, userstore.User, uid)
		if err == nil || st == userstore.Active {
			t.Fatalf("Lookup on hung Redis = %s, %v; want an error", st, err)
		}
		if !errors.Is(err, userstore.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v; want ErrUnavailable and DeadlineExceeded", err)
		}
	})
	t.Run("caller deadline", func(t *testing.T) {
		s := New(client, Options{Timeout: time.Hour})
		cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		st, err := s.Lookup(cctx, userstore.User, uid)
		if err == nil || st == userstore.Active || !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, userstore.ErrUnavailable) {
			t.Fatalf("Lookup = %s, %v; want ErrUnavailable and DeadlineExceeded", st, err)
		}
	})
	// go-redis turns a context's deadline into a socket deadline but does
	// not interrupt a blocked read on cancellation: a cancelled lookup ends
	// at Options.Timeout, still reporting the cancellation.
	t.Run("caller cancel", func(t *testing.T) {
		s := New(client, Options{Timeout: 300 * time.Millisecond})
		cctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(50*time.Millisecond, cancel)
		st, err := s.Lookup(cctx, userstore.User, uid)
		if err == nil || st == userstore.Active || !errors.Is(err, context.Canceled) || !errors.Is(err, userstore.ErrUnavailable) {
			t.Fatalf("Lookup = %s, %v; want ErrUnavailable and Canceled", st, err)
		}
	})
	if ctx.Err() != nil {
		t.Fatal("the watchdog expired: a deadline was not honoured")
	}
}

func TestCacheOverRedis(t *testing.T) {
	srv, client, ctx := setup(t)
	s := New(client, relaxed)
	if err := s.Put(ctx, userstore.User, userstore.Record{ID: uid, Active: true}); err != nil {
		t.Fatal(err)
	}
	const other = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
	if err := s.Put(ctx, userstore.User, userstore.Record{ID: other, Active: true}); err != nil {
		t.Fatal(err)
	}
	c := userstore.NewCache(s, userstore.CacheOptions{TTL: time.Hour, LookupTimeout: time.Second})
	wantStatus2 := func(id string, want userstore.Status) {
		t.Helper()
		if st, err := c.Lookup(ctx, userstore.User, id); err != nil || st != want {
			t.Fatalf("cache Lookup(%s) = %s, %v; want %s", id, st, err, want)
		}
	}
	wantStatus2(uid, userstore.Active)
	wantStatus2("missing", userstore.NotFound)

	srv.Kill()
	// Within TTL the cached answers survive the outage...
	wantStatus2(uid, userstore.Active)
	wantStatus2("missing", userstore.NotFound)
	// ...but a record that was never cached fails closed, although Redis
	// holds it as active.
	st, err := c.Lookup(ctx, userstore.User, other)
	if err == nil || st == userstore.Active || !errors.Is(err, userstore.ErrUnavailable) {
		t.Fatalf("uncached lookup with Redis down = %s, %v; want ErrUnavailable", st, err)
	}
}

func TestNewClient(t *testing.T) {
	srv, _, ctx := setup(t)
	const secret = "s3cr/et-pass"
	if err := srv.Client().ConfigSet(ctx, "requirepass", secret).Err(); err != nil {
		t.Fatal(err)
	}
	good, err := NewClient("redis://:" + strings.ReplaceAll(secret, "/", "%2F") + "@" + srv.Addr() + "/0")
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	if err := New(good, relaxed).Ping(ctx); err != nil {
		t.Fatalf("Ping with the password: %v", err)
	}
	bad, err := NewClient("redis://:wrong-pass@" + srv.Addr() + "/0")
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if err := New(bad, Options{}).Ping(ctx); err == nil || strings.Contains(err.Error(), "wrong-pass") {
		t.Fatalf("Ping with a wrong password: %v; want an error without the password", err)
	}

	if c, err := NewClient("rediss://user:pw@redis.example.com:6380/2"); err != nil {
		t.Fatalf("rediss URL: %v", err)
	} else {
		c.Close()
	}
	for _, u := range []string{
		"redis://:" + secret + "@host:6379/0", // unescaped "/" in the password: a parse error quoting it
		"redis://u:" + secret + "@host:notaport/0",
		"redis://u:hunter2@host:6379/notadb",
		"redis://u:hunter2@host:6379/0?pool_size=hunter2x",
		"http://u:hunter2@host:6379/0",
		"redis://host:6379/0/1",
	} {
		_, err := NewClient(u)
		if err == nil {
			t.Errorf("NewClient(%q) succeeded, want an error", u)
			continue
		}
		for _, leak := range []string{"s3cr", "hunter2", "et-pass", u} {
			if strings.Contains(err.Error(), leak) {
				t.Errorf("NewClient error %q leaks %q", err, leak)
			}
		}
	}
}

// benchStore is a Store on a real redis-server holding one active user, uid.
func benchStore(b *testing.B) (*Store, context.Context) {
	b.Helper()
	srv := redistest.Start(b)
	client, err := NewClient(srv.URL())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { client.Close() })
	s := New(client, Options{})
	ctx := context.Background()
	if err := s.Put(ctx, userstore.User, userstore.Record{ID: uid, Active: true}); err != nil {
		b.Fatal(err)
	}
	return s, ctx
}

func BenchmarkLookup(b *testing.B) {
	s, ctx := benchStore(b)
	b.ReportAllocs()
	for b.Loop() {
		if st, err := s.Lookup(ctx, userstore.User, uid); err != nil || st != userstore.Active {
			b.Fatal(st, err)
		}
	}
}

func BenchmarkLookupParallel(b *testing.B) {
	s, ctx := benchStore(b)
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Lookup(ctx, userstore.User, uid); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
