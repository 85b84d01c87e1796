package redisstore

import (
	"context"
	"crypto/sha256"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-authz/gatehouse/internal/testkit"
	"github.com/gatehouse-authz/gatehouse/internal/testkit/redistest"
	"github.com/gatehouse-authz/gatehouse/userstore"
)

const (
	subA = "4a8b0d6e-0000-4000-8000-00000000000a"
	subB = "4a8b0d6e-0000-4000-8000-00000000000b"
	subC = "4a8b0d6e-0000-4000-8000-00000000000c"
)

func lowerUUID(s string) (string, bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return "", false
	}
	return strings.ToLower(s), true
}

func wantSub(t *testing.T, ctx context.Context, s *Store, sub, wantID string) {
	t.Helper()
	id, found, err := s.UserBySub(ctx, sub)
	if err != nil {
		t.Fatalf("UserBySub(%q): %v", sub, err)
	}
	if found != (wantID != "") || id != wantID {
		t.Fatalf("UserBySub(%q) = %q, %v; want %q", sub, id, found, wantID)
	}
}

func clusterClient(t *testing.T) (redis.UniversalClient, context.Context) {
	t.Helper()
	cl := redistest.StartCluster(t, 3)
	client, _, err := NewUniversalClient(ClientConfig{ClusterAddrs: cl.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 6*watchdog)
	t.Cleanup(cancel)
	return client, ctx
}

func TestSubjectsStandalone(t *testing.T) {
	_, client, ctx := setup(t)
	exerciseSubjects(t, ctx, client)
}

func TestSubjectsCluster(t *testing.T) {
	client, ctx := clusterClient(t)
	exerciseSubjects(t, ctx, client)
}

// exerciseSubjects: the index follows every write, a sub change is
// published, and a malformed or stale index entry finds nobody, alone.
func exerciseSubjects(t *testing.T, ctx context.Context, client redis.UniversalClient) {
	var logs testkit.LogBuffer
	s := New(client, Options{Timeout: 5 * time.Second, NormalizeUserID: lowerUUID, Logger: testkit.NewLogger(&logs)})
	published := subscribe(t, ctx, client, s)
	ss := s.NewSession(SessionOptions{})
	defer ss.Close()
	put := func(es ...userstore.Entry) BatchResult {
		t.Helper()
		res, err := ss.PutBatch(ctx, userstore.User, es)
		if err != nil {
			t.Fatalf("PutBatch: %v", err)
		}
		return res
	}
	user := func(id, sub string, active bool) userstore.Entry {
		return userstore.Entry{Record: userstore.Record{ID: id, Active: active, Sub: sub}}
	}

	put(user(subA, "alice", true), user(subB, "bob", true), user(subC, "", true))
	if got := published(5); !slices.Equal(got, []string{"sub:alice", "sub:bob", "user:" + subA, "user:" + subB, "user:" + subC}) {
		t.Fatalf("published %q", got)
	}
	wantSub(t, ctx, s, "alice", subA)
	wantSub(t, ctx, s, "bob", subB)
	wantSub(t, ctx, s, "carol", "")
	if r, _, err := s.Get(ctx, userstore.User, subA); err != nil || r.Sub != "alice" {
		t.Fatalf("Get = %+v, %v", r, err)
	}

	// A sub moves: the old one finds nobody; both are published.
	put(user(subA, "alice2", true))
	if got := published(3); !slices.Equal(got, []string{"sub:alice", "sub:alice2", "user:" + subA}) {
		t.Fatalf("published %q", got)
	}
	wantSub(t, ctx, s, "alice", "")
	wantSub(t, ctx, s, "alice2", subA)
	if n, _ := client.Exists(ctx, "gatehouse:sub:alice").Result(); n != 0 {
		t.Error("the old sub's index entry is still there")
	}
	// Writing a user again with the same sub publishes no sub.
	put(user(subA, "alice2", false))
	if got := published(1); !slices.Equal(got, []string{"user:" + subA}) {
		t.Fatalf("published %q", got)
	}

	// A sub another user has is refused, and that user alone.
	res := put(user(subC, "bob", true), user(subA, "alice2", true))
	if !slices.Equal(res.SubTaken, []string{subC}) || !slices.Equal(res.Written, []string{subA}) {
		t.Fatalf("taken sub: %+v", res)
	}
	published(1)
	wantSub(t, ctx, s, "bob", subB)
	if m, _ := client.HGetAll(ctx, "gatehouse:user:"+subC).Result(); m["sub"] != "" {
		t.Fatalf("a refused record was written: %v", m)
	}
	if err := s.Put(ctx, userstore.User, userstore.Record{ID: subC, Sub: "bob"}); !errors.Is(err, ErrSubConflict) {
		t.Fatalf("Store.Put of a taken sub: %v", err)
	}
	// Two users swapping subs in one batch: no conflict.
	put(user(subA, "bob", true), user(subB, "alice2", true))
	published(4)
	wantSub(t, ctx, s, "bob", subA)
	wantSub(t, ctx, s, "alice2", subB)

	// An index key of another type refuses a new sub, but never blocks a
	// write of a user who already has the sub (disabling must work).
	if err := client.SAdd(ctx, "gatehouse:sub:weird", "x").Err(); err != nil {
		t.Fatal(err)
	}
	if res := put(user(subC, "weird", true)); !slices.Equal(res.SubWrongType, []string{subC}) {
		t.Fatalf("index of another type: %+v", res)
	}
	if err := client.HSet(ctx, "gatehouse:user:"+subC, "sub", "weird").Err(); err != nil {
		t.Fatal(err)
	}
	if res := put(user(subC, "weird", false)); !slices.Equal(res.Written, []string{subC}) {
		t.Fatalf("disabling a user whose sub index is broken: %+v", res)
	}
	published(1)
	wantStatus(t, s, ctx, userstore.User, subC, userstore.Inactive)

	// Malformed and stale entries find nobody, without an error, and are
	// counted and logged without the sub.
	before := s.InvalidSubjects()
	for key, val := range map[string]any{
		"gatehouse:sub:empty":     "",
		"gatehouse:sub:dangling":  "4a8b0d6e-0000-4000-8000-0000000000ff",
		"gatehouse:sub:stale":     subA,                  // subA's hash says "bob"
		"gatehouse:sub:uppercase": strings.ToUpper(subB), // not what lookups ask for
	} {
		if err := client.Set(ctx, key, val, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := client.HSet(ctx, "gatehouse:user:"+strings.ToUpper(subB), "active", "1", "sub", "uppercase").Err(); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"weird", "empty", "dangling", "stale", "uppercase"} {
		wantSub(t, ctx, s, sub, "")
	}
	if n := s.InvalidSubjects() - before; n != 5 {
		t.Errorf("%d malformed entries counted, want 5", n)
	}
	if out := logs.String(); strings.Count(out, "malformed subject index entry") != 5 || strings.Contains(out, "dangling") || strings.Contains(out, "uppercase") {
		t.Errorf("logs:\n%s", out)
	}
	// They spread nowhere.
	wantSub(t, ctx, s, "bob", subA)
	wantSub(t, ctx, s, "bad\x00sub", "")

	// Delete takes the user's index entry with it, and publishes the sub.
	existed, err := ss.Remove(ctx, userstore.User, subA)
	if err != nil || !existed {
		t.Fatalf("Remove = %v, %v", existed, err)
	}
	if got := published(2); !slices.Equal(got, []string{"sub:bob", "user:" + subA}) {
		t.Fatalf("published %q", got)
	}
	if n, _ := client.Exists(ctx, "gatehouse:sub:bob").Result(); n != 0 {
		t.Error("the deleted user's index entry is still there")
	}
	wantSub(t, ctx, s, "bob", "")
	// Removing a sub.
	put(user(subB, "", true))
	published(2)
	wantSub(t, ctx, s, "alice2", "")

	// Apps have no sub.
	if _, err := ss.PutBatch(ctx, userstore.App, []userstore.Entry{{Record: userstore.Record{ID: "app", Sub: "x"}}}); err == nil {
		t.Error("an app with a sub was written")
	}
}

// A Cluster writes a user's hash and its index entry in two steps; every
// state a failure can leave in between finds nobody by either sub.
func TestSubjectsClusterHalfWritten(t *testing.T) {
	client, ctx := clusterClient(t)
	s := New(client, Options{Timeout: 5 * time.Second, Logger: testkit.NewLogger(&testkit.LogBuffer{})})
	// The hash has the new sub, the index still names the user under the
	// old one and has nothing under the new one.
	if err := client.HSet(ctx, "gatehouse:user:"+subA, "active", "1", "sub", "new").Err(); err != nil {
		t.Fatal(err)
	}
	if err := client.Set(ctx, "gatehouse:sub:old", subA, 0).Err(); err != nil {
		t.Fatal(err)
	}
	wantSub(t, ctx, s, "old", "")
	wantSub(t, ctx, s, "new", "")
	// Writing the record again completes it.
	if err := s.Put(ctx, userstore.User, userstore.Record{ID: subA, Active: true, Sub: "new"}); err != nil {
		t.Fatal(err)
	}
	wantSub(t, ctx, s, "new", subA)
}

func TestUserBySubRedisDownFailsClosed(t *testing.T) {
	srv, client, ctx := setup(t)
	s := New(client, Options{Timeout: 300 * time.Millisecond})
	if err := New(client, relaxed).Put(ctx, userstore.User, userstore.Record{ID: uid, Active: true, Sub: "alice"}); err != nil {
		t.Fatal(err)
	}
	wantSub(t, ctx, s, "alice", uid)
	srv.Kill()
	id, found, err := s.UserBySub(ctx, "alice")
	if !errors.Is(err, userstore.ErrUnavailable) || found || id != "" || strings.Contains(err.Error(), "alice") {
		t.Fatalf("Redis down: %q, %v, %v; want ErrUnavailable without the sub", id, found, err)
	}
	ic := s.IntrospectionCache()
	if _, _, err := ic.Get(ctx, [32]byte{}); !errors.Is(err, userstore.ErrUnavailable) {
		t.Fatalf("introspection Get with Redis down: %v", err)
	}
	if err := ic.Set(ctx, [32]byte{}, []byte("v"), time.Second); !errors.Is(err, userstore.ErrUnavailable) {
		t.Fatalf("introspection Set with Redis down: %v", err)
	}
}

func TestIntrospectionCacheStandalone(t *testing.T) {
	_, client, ctx := setup(t)
	exerciseIntrospection(t, ctx, client)
}

func TestIntrospectionCacheCluster(t *testing.T) {
	client, ctx := clusterClient(t)
	exerciseIntrospection(t, ctx, client)
}

func exerciseIntrospection(t *testing.T, ctx context.Context, client redis.UniversalClient) {
	c := New(client, Options{Prefix: "gh:", Timeout: 5 * time.Second}).IntrospectionCache()
	var keys [][sha256.Size]byte
	for _, tok := range []string{"token-1", "token-2", "token-3", "token-4"} {
		keys = append(keys, sha256.Sum256([]byte(tok)))
	}
	verdict := []byte{0, 1, 2, 0xff}
	if err := c.Set(ctx, keys[0], verdict, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	got, found, err := c.Get(ctx, keys[0])
	if err != nil || !found || string(got) != string(verdict) {
		t.Fatalf("Get = %x, %v, %v", got, found, err)
	}
	key := "gh:introspection:" + hexOf(keys[0])
	pttl, err := client.PTTL(ctx, key).Result()
	if err != nil || pttl <= 0 || pttl > 2*time.Second {
		t.Fatalf("PTTL(%s) = %v, %v; want a TTL of at most 2s", key, pttl, err)
	}
	// A TTL that is not positive stores nothing.
	for _, ttl := range []time.Duration{0, -time.Second} {
		if err := c.Set(ctx, keys[1], verdict, ttl); err != nil {
			t.Fatal(err)
		}
		if _, found, err := c.Get(ctx, keys[1]); found || err != nil {
			t.Fatalf("TTL %s: found %v, %v", ttl, found, err)
		}
	}
	// A sub-millisecond TTL still expires.
	if err := c.Set(ctx, keys[2], verdict, time.Microsecond); err != nil {
		t.Fatal(err)
	}
	if pttl, _ := client.PTTL(ctx, "gh:introspection:"+hexOf(keys[2])).Result(); pttl > time.Millisecond {
		t.Fatalf("a 1µs TTL became %v", pttl)
	}
	// A key of another type is not a verdict.
	if err := client.SAdd(ctx, "gh:introspection:"+hexOf(keys[3]), "x").Err(); err != nil {
		t.Fatal(err)
	}
	if v, found, err := c.Get(ctx, keys[3]); found || err != nil || v != nil {
		t.Fatalf("wrong type: %q, %v, %v", v, found, err)
	}
	// Expiry.
	if err := c.Set(ctx, keys[1], verdict, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(watchdog)
	for {
		_, found, err := c.Get(ctx, keys[1])
		if err != nil {
			t.Fatal(err)
		}
		if !found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a verdict outlived its TTL")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// No token text in Redis: keys are the prefix and 64 hex digits.
	var all []string
	var mu sync.Mutex // ForEachMaster runs concurrently
	scan := func(ctx context.Context, c *redis.Client) error {
		ks, err := c.Keys(ctx, "*").Result()
		mu.Lock()
		all = append(all, ks...)
		mu.Unlock()
		return err
	}
	if cc, ok := client.(*redis.ClusterClient); ok {
		if err := cc.ForEachMaster(ctx, scan); err != nil {
			t.Fatal(err)
		}
	} else if err := scan(ctx, client.(*redis.Client)); err != nil {
		t.Fatal(err)
	}
	for _, k := range all {
		hexPart, ok := strings.CutPrefix(k, "gh:introspection:")
		if !ok || len(hexPart) != 64 || strings.ToLower(hexPart) != hexPart || strings.Contains(k, "token") {
			t.Errorf("unexpected key %q", k)
		}
	}
}

func hexOf(b [sha256.Size]byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 64)
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// BenchmarkUserBySub: one subject lookup against a real redis-server (the
// index and the hash checked in one script round trip).
func BenchmarkUserBySub(b *testing.B) {
	s, ctx := benchStore(b)
	if err := s.Put(ctx, userstore.User, userstore.Record{ID: uid, Active: true, Sub: "alice"}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if id, found, err := s.UserBySub(ctx, "alice"); err != nil || !found || id != uid {
			b.Fatal(id, found, err)
		}
	}
}

// BenchmarkIntrospectionCacheGet: one cached verdict read from Redis.
func BenchmarkIntrospectionCacheGet(b *testing.B) {
	s, ctx := benchStore(b)
	c := s.IntrospectionCache()
	key := sha256.Sum256([]byte("token"))
	if err := c.Set(ctx, key, []byte(`{"active":true}`), time.Minute); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, found, err := c.Get(ctx, key); err != nil || !found {
			b.Fatal(found, err)
		}
	}
}
