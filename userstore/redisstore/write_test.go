package redisstore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-authz/gatehouse/internal/testkit/redistest"
	"github.com/gatehouse-authz/gatehouse/userstore"
)

// subscribe returns a function that collects the invalidations published
// until it is called (waiting for want of them, within the watchdog).
func subscribe(t *testing.T, ctx context.Context, client redis.UniversalClient, s *Store) func(want int) []string {
	t.Helper()
	sub := client.Subscribe(ctx, s.InvalidationChannel())
	t.Cleanup(func() { sub.Close() })
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	return func(want int) []string {
		t.Helper()
		var got []string
		for len(got) < want {
			msg, err := sub.ReceiveMessage(ctx)
			if err != nil {
				t.Fatalf("after %v: %v", got, err)
			}
			got = append(got, msg.Payload)
		}
		// Nothing more: a marker published now must come next.
		if err := client.Publish(ctx, s.InvalidationChannel(), "marker").Err(); err != nil {
			t.Fatal(err)
		}
		if msg, err := sub.ReceiveMessage(ctx); err != nil || msg.Payload != "marker" {
			t.Fatalf("after %v: unexpected %v, %v", got, msg, err)
		}
		slices.Sort(got)
		return got
	}
}

// wrongTypeBatch: a batch whose middle key holds a string. The others are
// written whole and published; the string is left alone and named.
// (Before: the others were written, the error claimed the batch failed,
// and nothing was published, so replicas kept serving the old records.)
func wrongTypeBatch(t *testing.T, ctx context.Context, client redis.UniversalClient) {
	t.Helper()
	s := New(client, relaxed)
	published := subscribe(t, ctx, client, s)
	var batch []userstore.Record
	for i := range 40 {
		batch = append(batch, userstore.Record{ID: fmt.Sprintf("u%02d", i), Active: false, Email: "x@example.com"})
	}
	if err := client.Set(ctx, "gatehouse:user:u17", "a string", 0).Err(); err != nil {
		t.Fatal(err)
	}
	err := s.PutBatch(ctx, userstore.User, batch)
	var wt *WrongTypeError
	if !errors.As(err, &wt) || !slices.Equal(wt.IDs, []string{"u17"}) {
		t.Fatalf("PutBatch = %v; want a WrongTypeError naming u17", err)
	}
	var want []string
	for _, r := range batch {
		if r.ID == "u17" {
			continue
		}
		want = append(want, "user:"+r.ID)
		if m, err := client.HGetAll(ctx, "gatehouse:user:"+r.ID).Result(); err != nil || m["active"] != "0" || m["email"] != "x@example.com" {
			t.Fatalf("%s = %v, %v", r.ID, m, err)
		}
	}
	if v, err := client.Get(ctx, "gatehouse:user:u17").Result(); err != nil || v != "a string" {
		t.Fatalf("u17 = %q, %v; want it untouched", v, err)
	}
	if got := published(len(want)); !slices.Equal(got, want) {
		t.Fatalf("published %v, want %v", got, want)
	}
}

func TestPutBatchWrongTypeStandalone(t *testing.T) {
	_, client, ctx := setup(t)
	wrongTypeBatch(t, ctx, client)
}

func TestPutBatchWrongTypeCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	client, _, err := NewUniversalClient(ClientConfig{ClusterAddrs: cl.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 3*watchdog)
	defer cancel()
	wrongTypeBatch(t, ctx, client)
}

// TestSessionWritesExtraFields: a batch entry's extra fields and a present
// empty email are written as they are; WrongTyped names keys of other
// types only.
func TestSessionWritesExtraFields(t *testing.T) {
	srv, client, ctx := setup(t)
	s := New(client, relaxed)
	ss := s.NewSession(SessionOptions{})
	defer ss.Close()
	res, err := ss.PutBatch(ctx, userstore.App, []userstore.Entry{
		{Record: userstore.Record{ID: "a", Active: true, Email: "a b <a@example.com>"}, Extra: map[string]string{"team": "blue", "n": ""}},
		{Record: userstore.Record{ID: "b"}, EmailSet: true},
	})
	if err != nil || !slices.Equal(res.Written, []string{"a", "b"}) || len(res.WrongType) != 0 {
		t.Fatalf("PutBatch = %+v, %v", res, err)
	}
	raw := srv.Client()
	if m, _ := raw.HGetAll(ctx, "gatehouse:app:a").Result(); !maps.Equal(m, map[string]string{"active": "1", "email": "a b <a@example.com>", "team": "blue", "n": ""}) {
		t.Errorf("a = %q", m)
	}
	if m, _ := raw.HGetAll(ctx, "gatehouse:app:b").Result(); !maps.Equal(m, map[string]string{"active": "0", "email": ""}) {
		t.Errorf("b = %q", m)
	}
	if err := raw.SAdd(ctx, "gatehouse:app:c", "x").Err(); err != nil {
		t.Fatal(err)
	}
	types, err := s.WrongTyped(ctx, userstore.App, []string{"a", "b", "c", "absent"})
	if err != nil || !maps.Equal(types, map[string]string{"c": "set"}) {
		t.Errorf("WrongTyped = %v, %v", types, err)
	}
	// SetActive on a key of another type writes nothing and says why.
	if _, err := ss.SetActive(ctx, userstore.App, "c", false); !errors.Is(err, ErrWrongType) {
		t.Errorf("SetActive on a set: %v", err)
	}
}

// TestSessionWaitsForAReplica: Wait reports a master whose replica did not
// acknowledge the session's writes. WAIT must run on the connection that
// wrote: asked on another one, a master answers at once that its replica
// has everything that connection wrote (nothing).
func TestSessionWaitsForAReplica(t *testing.T) {
	master := redistest.Start(t)
	replica := redistest.StartReplica(t, master)
	client, err := NewClient(master.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), watchdog)
	defer cancel()
	s := New(client, relaxed)
	// A live replica gets a bound far above its usual delay (the suite
	// runs under -race on busy machines); a paused one a short bound.
	live := SessionOptions{ReplicaWait: watchdog / 2}
	opts := SessionOptions{ReplicaWait: 300 * time.Millisecond}

	ss := s.NewSession(live)
	if err := ss.putOne(ctx, "live"); err != nil {
		t.Fatal(err)
	}
	ack, err := ss.Wait(ctx)
	ss.Close()
	if err != nil || len(ack.Waited) != 1 || len(ack.Unacked) != 0 {
		t.Fatalf("Wait with a live replica = %+v, %v", ack, err)
	}

	replica.Pause()
	defer replica.Resume()
	ss = s.NewSession(opts)
	defer ss.Close()
	if ok, err := ss.SetActive(ctx, userstore.User, "live", false); !ok || err != nil {
		t.Fatalf("SetActive = %v, %v", ok, err)
	}
	ack, err = ss.Wait(ctx)
	if err != nil || len(ack.Unacked) != 1 || ack.Unacked[0] != master.Addr() {
		t.Fatalf("Wait with a paused replica = %+v, %v; want %s unacknowledged", ack, err, master.Addr())
	}

	// A session that wrote nothing, or a master without replicas, does
	// not wait.
	alone := redistest.Start(t)
	c2, err := NewClient(alone.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c2.Close() })
	ss2 := New(c2, relaxed).NewSession(opts)
	defer ss2.Close()
	if ack, err := ss2.Wait(ctx); err != nil || len(ack.Waited)+len(ack.NoReplicas) != 0 {
		t.Fatalf("Wait without writes = %+v, %v", ack, err)
	}
	if err := ss2.putOne(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if ack, err := ss2.Wait(ctx); err != nil || len(ack.NoReplicas) != 1 || len(ack.Waited) != 0 {
		t.Fatalf("Wait without replicas = %+v, %v", ack, err)
	}
	// Unless replicas are expected (Sentinel): then none is a warning.
	ss3 := New(c2, relaxed).NewSession(SessionOptions{ReplicaWait: 100 * time.Millisecond, ExpectReplicas: true})
	defer ss3.Close()
	if err := ss3.putOne(ctx, "y"); err != nil {
		t.Fatal(err)
	}
	if ack, err := ss3.Wait(ctx); err != nil || len(ack.Unacked) != 1 {
		t.Fatalf("Wait expecting replicas = %+v, %v", ack, err)
	}
}

func (ss *Session) putOne(ctx context.Context, id string) error {
	_, err := ss.PutBatch(ctx, userstore.User, []userstore.Entry{{Record: userstore.Record{ID: id, Active: true}}})
	return err
}

// TestSessionWaitsThroughSentinel: through a Sentinel-managed client the
// session's writes and its WAIT go to the master the sentinels name.
func TestSessionWaitsThroughSentinel(t *testing.T) {
	master := redistest.Start(t)
	replica := redistest.StartReplica(t, master)
	sentinel := redistest.StartSentinel(t, master)
	client, _, err := NewUniversalClient(ClientConfig{SentinelAddrs: []string{sentinel.Addr()}, SentinelMaster: redistest.SentinelMaster})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), watchdog)
	defer cancel()
	s := New(client, relaxed)
	ss := s.NewSession(SessionOptions{ReplicaWait: watchdog / 2, ExpectReplicas: true})
	defer ss.Close()
	if err := ss.putOne(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if ack, err := ss.Wait(ctx); err != nil || len(ack.Waited) != 1 || len(ack.Unacked) != 0 {
		t.Fatalf("Wait through Sentinel = %+v, %v", ack, err)
	}
	if v, err := replica.Client().HGet(ctx, "gatehouse:user:s1", "active").Result(); err != nil || v != "1" {
		t.Fatalf("replica after an acknowledged WAIT: %q, %v", v, err)
	}
}
