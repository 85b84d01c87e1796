package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-authz/gatehouse/internal/testkit/redistest"
	"github.com/gatehouse-authz/gatehouse/userstore"
)

// exercise runs the store's whole surface against one deployment: writes
// that publish, lookups, enable/disable, batches spread over many keys (and
// so, in a Cluster, over many slots), scan, delete.
func exercise(t *testing.T, client redis.UniversalClient) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), watchdog)
	defer cancel()
	s := New(client, relaxed)
	sub := client.Subscribe(ctx, s.InvalidationChannel())
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if err := s.Put(ctx, userstore.User, userstore.Record{ID: uid, Active: true, Email: "a@example.com"}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	msg, err := sub.ReceiveMessage(ctx)
	if err != nil || msg.Payload != "user:"+uid {
		t.Fatalf("invalidation after Put: %v, %v", msg, err)
	}
	wantStatus(t, s, ctx, userstore.User, uid, userstore.Active)
	if ok, err := s.SetActive(ctx, userstore.User, uid, false); !ok || err != nil {
		t.Fatalf("SetActive on an existing record = %v, %v", ok, err)
	}
	wantStatus(t, s, ctx, userstore.User, uid, userstore.Inactive)
	if ok, err := s.SetActive(ctx, userstore.User, "missing", true); ok || err != nil {
		t.Fatalf("SetActive on a missing record = %v, %v; want false, nil", ok, err)
	}
	wantStatus(t, s, ctx, userstore.User, "missing", userstore.NotFound)

	var batch []userstore.Record
	for i := range 300 {
		batch = append(batch, userstore.Record{ID: fmt.Sprintf("app-%03d", i), Active: i%2 == 0})
	}
	if err := s.PutBatch(ctx, userstore.App, batch); err != nil {
		t.Fatalf("PutBatch: %v", err)
	}
	wantStatus(t, s, ctx, userstore.App, "app-000", userstore.Active)
	wantStatus(t, s, ctx, userstore.App, "app-299", userstore.Inactive)
	var got []string
	if err := s.Scan(ctx, userstore.App, func(r userstore.Record) error {
		if want := strings.HasSuffix(r.ID, "0") || strings.HasSuffix(r.ID, "2") || strings.HasSuffix(r.ID, "4") ||
			strings.HasSuffix(r.ID, "6") || strings.HasSuffix(r.ID, "8"); r.Active != want {
			t.Errorf("scanned %+v: active %v, want %v", r, r.Active, want)
		}
		got = append(got, r.ID)
		return nil
	}); err != nil {
		t.Fatalf("Scan: %v", err)
	}
	slices.Sort(got)
	if got = slices.Compact(got); len(got) != 300 || got[0] != "app-000" || got[299] != "app-299" {
		t.Fatalf("Scan found %d distinct apps, want app-000 to app-299", len(got))
	}
	if existed, err := s.Remove(ctx, userstore.User, uid); !existed || err != nil {
		t.Fatalf("Remove = %v, %v", existed, err)
	}
	wantStatus(t, s, ctx, userstore.User, uid, userstore.NotFound)
}

func TestStandaloneURL(t *testing.T) {
	srv := redistest.Start(t)
	client, mode, err := NewUniversalClient(ClientConfig{URL: srv.URL()})
	if err != nil || mode != Standalone {
		t.Fatalf("NewUniversalClient = %v, %v", mode, err)
	}
	t.Cleanup(func() { client.Close() })
	exercise(t, client)
}

// TestRepliesLargerThanConnBuffer: connections carry small buffers
// (connBufferSize); a reply or a command many times larger still goes
// through whole.
func TestRepliesLargerThanConnBuffer(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 16*connBufferSize/16) // 16 buffers
	srv := redistest.Start(t)
	client, _, err := NewUniversalClient(ClientConfig{URL: srv.URL()})
	if err != nil {
		t.Fatalf("NewUniversalClient: %v", err)
	}
	t.Cleanup(func() { client.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := client.HSet(ctx, "big", "v", big).Err(); err != nil {
		t.Fatalf("HSET of %d bytes: %v", len(big), err)
	}
	got, err := client.HGet(ctx, "big", "v").Result()
	if err != nil || got != big {
		t.Fatalf("HGET of %d bytes returned %d bytes, err %v", len(big), len(got), err)
	}
}

func TestSentinel(t *testing.T) {
	master := redistest.Start(t)
	sentinel := redistest.StartSentinel(t, master)
	for name, cc := range map[string]ClientConfig{
		"url":      {URL: "redis-sentinel://" + sentinel.Addr() + "/0?master_name=" + redistest.SentinelMaster},
		"settings": {SentinelAddrs: []string{sentinel.Addr()}, SentinelMaster: redistest.SentinelMaster},
	} {
		t.Run(name, func(t *testing.T) {
			client, mode, err := NewUniversalClient(cc)
			if err != nil || mode != Sentinel {
				t.Fatalf("NewUniversalClient = %v, %v", mode, err)
			}
			t.Cleanup(func() { client.Close() })
			exercise(t, client)
			// The writes landed on the master the sentinel named.
			ctx, cancel := context.WithTimeout(t.Context(), watchdog)
			defer cancel()
			if n, err := master.Client().Exists(ctx, "gatehouse:app:app-000").Result(); n != 1 || err != nil {
				t.Fatalf("the master does not hold the record: %d, %v", n, err)
			}
			if err := master.Client().FlushAll(ctx).Err(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestSentinelFailover: when Sentinel promotes the replica, the store built
// by NewUniversalClient follows it: what was written before the switch is
// still read, and writes and their invalidations go to the new master. In
// between, operations may fail (the caller's cache then serves or denies),
// never answer wrongly.
func TestSentinelFailover(t *testing.T) {
	master := redistest.Start(t)
	replica := redistest.StartReplica(t, master)
	sentinel := redistest.StartSentinel(t, master)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	sc := redis.NewSentinelClient(&redis.Options{Addr: sentinel.Addr(), ContextTimeoutEnabled: true})
	defer sc.Close()
	waitFor(t, ctx, "the sentinel to see a healthy replica", func() error {
		replicas, err := sc.Replicas(ctx, redistest.SentinelMaster).Result()
		if err != nil {
			return err
		}
		if len(replicas) == 0 || replicas[0]["flags"] != "slave" || replicas[0]["master-link-status"] != "ok" {
			return fmt.Errorf("replicas: %v", replicas)
		}
		return nil
	})

	client, mode, err := NewUniversalClient(ClientConfig{SentinelAddrs: []string{sentinel.Addr()}, SentinelMaster: redistest.SentinelMaster})
	if err != nil || mode != Sentinel {
		t.Fatalf("NewUniversalClient = %v, %v", mode, err)
	}
	t.Cleanup(func() { client.Close() })
	s := New(client, relaxed)
	// A subscription made before the failover, as gatehouse's invalidation
	// listener makes one at start-up.
	sub := client.Subscribe(ctx, s.InvalidationChannel())
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	const before, after = "6f1c2f9e-3b7a-4c52-9d0e-000000000001", "6f1c2f9e-3b7a-4c52-9d0e-000000000002"
	if err := s.Put(ctx, userstore.User, userstore.Record{ID: before, Active: true}); err != nil {
		t.Fatalf("Put before the failover: %v", err)
	}
	// The record must be on the replica before it is promoted. (WAIT would
	// not do: it waits for the writes of its own connection only.)
	beforeKey, err := s.Key(userstore.User, before)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the record to reach the replica", func() error {
		if n, err := replica.Client().Exists(ctx, beforeKey).Result(); err != nil || n != 1 {
			return fmt.Errorf("EXISTS on the replica = %d, %v", n, err)
		}
		return nil
	})

	// The sentinel refuses a replica it has not had a recent INFO from
	// (NOGOODSLAVE); it asks every few seconds.
	waitFor(t, ctx, "SENTINEL FAILOVER to be accepted", func() error {
		return sc.Failover(ctx, redistest.SentinelMaster).Err()
	})
	waitFor(t, ctx, "the sentinel to name the replica master", func() error {
		addr, err := sc.GetMasterAddrByName(ctx, redistest.SentinelMaster).Result()
		if err != nil {
			return err
		}
		if got := net.JoinHostPort(addr[0], addr[1]); got != replica.Addr() {
			return fmt.Errorf("master is %s", got)
		}
		return nil
	})

	// Until the sentinel has turned the old master into a replica, it still
	// accepts writes, and they are lost when it resyncs: Redis replication
	// is asynchronous. That window is Redis's (docs/directory.md#redis-deployments says so); what is
	// tested here is that the client follows the switch once it is done.
	waitFor(t, ctx, "the old master to become a replica", func() error {
		info, err := master.Client().Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "role:slave") {
			return errors.New("still a master")
		}
		return nil
	})
	// Through the same client: an old record reads back, and a new one is
	// written to the new master (a write that reaches the demoted master
	// fails with READONLY, and is retried).
	waitFor(t, ctx, "a write through the store after the failover", func() error {
		return s.Put(ctx, userstore.User, userstore.Record{ID: after, Active: true})
	})
	wantStatus(t, s, ctx, userstore.User, before, userstore.Active)
	wantStatus(t, s, ctx, userstore.User, after, userstore.Active)
	// The subscription made before the switch hears invalidations published
	// after it. Its connection to the old master may drop; receiving again
	// reconnects and resubscribes, as gatehouse's listener does (which then
	// purges its cache: messages may have been missed in between).
	n := 0
	waitFor(t, ctx, "an invalidation on the subscription made before the failover", func() error {
		n++
		id := fmt.Sprintf("6f1c2f9e-3b7a-4c52-9d0e-%012d", 100+n)
		if err := s.Put(ctx, userstore.User, userstore.Record{ID: id, Active: true}); err != nil {
			return err
		}
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			msg, err := sub.ReceiveTimeout(ctx, time.Until(deadline))
			if err != nil {
				return err
			}
			if m, ok := msg.(*redis.Message); ok && m.Payload == "user:"+id {
				return nil
			}
		}
		return errors.New("no invalidation within 2s")
	})
	key, err := s.Key(userstore.User, after)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := replica.Client().Exists(ctx, key).Result(); err != nil || n != 1 {
		t.Fatalf("the promoted replica holds the new record: %d, %v", n, err)
	}
}

// waitFor retries f every 50 ms until it succeeds or ctx ends.
func waitFor(t *testing.T, ctx context.Context, what string, f func() error) {
	t.Helper()
	for {
		err := f()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func TestTLS(t *testing.T) {
	srv, files := redistest.StartTLS(t, true)
	client, mode, err := NewUniversalClient(ClientConfig{
		URL: srv.TLSURL(), TLSCAFile: files.CA, TLSCertFile: files.ClientCert, TLSKeyFile: files.ClientKey,
	})
	if err != nil || mode != Standalone {
		t.Fatalf("NewUniversalClient = %v, %v", mode, err)
	}
	t.Cleanup(func() { client.Close() })
	exercise(t, client)

	// Without the client certificate the server refuses the handshake, and
	// without the CA the client refuses the server.
	for name, cc := range map[string]ClientConfig{
		"no client certificate": {URL: srv.TLSURL(), TLSCAFile: files.CA},
		"unknown CA":            {URL: srv.TLSURL(), TLSCertFile: files.ClientCert, TLSKeyFile: files.ClientKey},
	} {
		c, _, err := NewUniversalClient(cc)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		err = c.Ping(ctx).Err()
		cancel()
		c.Close()
		if err == nil {
			t.Errorf("%s: PING answered", name)
		}
	}
}

func TestCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	for name, cc := range map[string]ClientConfig{
		"url":      {URL: "redis-cluster://" + strings.Join(cl.Addrs(), ",")},
		"settings": {ClusterAddrs: cl.Addrs()[:1]},
	} {
		t.Run(name, func(t *testing.T) {
			client, mode, err := NewUniversalClient(cc)
			if err != nil || mode != Cluster {
				t.Fatalf("NewUniversalClient = %v, %v", mode, err)
			}
			t.Cleanup(func() { client.Close() })
			exercise(t, client)
			// The batch spread over every master.
			ctx, cancel := context.WithTimeout(t.Context(), watchdog)
			defer cancel()
			for _, n := range cl.Nodes {
				if size, err := n.Client().DBSize(ctx).Result(); err != nil || size == 0 {
					t.Errorf("node %s holds %d keys (%v)", n.Addr(), size, err)
				}
				if err := n.Client().FlushAll(ctx).Err(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestClientConfigErrors(t *testing.T) {
	const pw = "s3cret-pw"
	for _, c := range []struct {
		name string
		cc   ClientConfig
		want string
	}{
		{"nothing", ClientConfig{}, "no Redis"},
		{"both", ClientConfig{SentinelAddrs: []string{"a:1"}, ClusterAddrs: []string{"b:2"}}, "choose one"},
		{"sentinel without master", ClientConfig{URL: "redis-sentinel://u:" + pw + "@a:1,b:2/0"}, "master name"},
		{"bad sentinel address", ClientConfig{URL: "redis-sentinel://u:" + pw + "@a:x/0?master_name=m"}, "invalid port"},
		{"unknown option", ClientConfig{URL: "redis-cluster://u:" + pw + "@a:1?password=" + pw}, "unknown query parameter"},
		{"cluster db", ClientConfig{URL: "redis-cluster://a:1/3"}, "database 0"},
		{"half a client certificate", ClientConfig{URL: "rediss://a:1", TLSCertFile: "/x"}, "both"},
		{"missing CA", ClientConfig{URL: "redis://u:" + pw + "@a:1", TLSCAFile: "/nonexistent/ca.pem"}, "CA file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			client, _, err := NewUniversalClient(c.cc)
			if err == nil {
				client.Close()
				t.Fatalf("no error, want one containing %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), pw) {
				t.Fatalf("error %q: want %q and no password", err, c.want)
			}
		})
	}
}

func TestParseMultiURL(t *testing.T) {
	m, err := parseMultiURL("rediss-sentinel://app:p%40ss@10.0.0.1:26379,10.0.0.2:26379/2?master_name=mymaster&sentinel_password=sp")
	if err != nil {
		t.Fatal(err)
	}
	if !m.tls || m.user != "app" || m.pass != "p@ss" || m.db != 2 || m.master != "mymaster" || m.sentinelPass != "sp" ||
		!slices.Equal(m.addrs, []string{"10.0.0.1:26379", "10.0.0.2:26379"}) {
		t.Fatalf("parsed %+v", m)
	}
}

// TestPutBatchRecordsWhole: a record is written with all its fields or not
// at all, and a key of another type in a batch is left alone, named, and
// does not stop the others.
func TestPutBatchRecordsWhole(t *testing.T) {
	srv, client, ctx := setup(t)
	raw := srv.Client()
	if err := raw.Set(ctx, "gatehouse:user:b", "not a hash", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := raw.HSet(ctx, "gatehouse:user:a", "active", "0", "email", "old@example.com").Err(); err != nil {
		t.Fatal(err)
	}
	s := New(client, relaxed)
	err := s.PutBatch(ctx, userstore.User, []userstore.Record{
		{ID: "a", Active: true},
		{ID: "b", Active: true, Email: "b@example.com"},
		{ID: "c", Active: true, Email: "c@example.com"},
	})
	var wt *WrongTypeError
	if !errors.As(err, &wt) || !errors.Is(err, ErrWrongType) || len(wt.IDs) != 1 || wt.IDs[0] != "b" {
		t.Fatalf("PutBatch over a string key: %v; want a WrongTypeError naming b alone", err)
	}
	// a: both its fields changed (active set, email removed), never one.
	if m, _ := raw.HGetAll(ctx, "gatehouse:user:a").Result(); m["active"] != "1" || m["email"] != "" {
		t.Errorf("a = %v; want the new record whole", m)
	}
	if v, _ := raw.Get(ctx, "gatehouse:user:b").Result(); v != "not a hash" {
		t.Errorf("b = %q; want it untouched", v)
	}
	if m, _ := raw.HGetAll(ctx, "gatehouse:user:c").Result(); m["active"] != "1" || m["email"] != "c@example.com" {
		t.Errorf("c = %v; want the record whole", m)
	}
	// Against a dead Redis nothing is written, and the error says unavailable.
	srv.Kill()
	kctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := New(client, Options{Timeout: 500 * time.Millisecond}).PutBatch(kctx, userstore.User, []userstore.Record{{ID: "d", Active: true}}); !errors.Is(err, userstore.ErrUnavailable) {
		t.Errorf("PutBatch with Redis down: %v", err)
	}
}
