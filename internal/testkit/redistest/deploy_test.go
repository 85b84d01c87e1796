package redistest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestStartTLS(t *testing.T) {
	s, files := StartTLS(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Client().Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("TLS client with certificate: %v", err)
	}
	// Plain TCP is not served at all.
	plain := redis.NewClient(&redis.Options{Addr: s.Addr(), DialTimeout: time.Second, ReadTimeout: time.Second, MaxRetries: -1})
	defer plain.Close()
	if err := plain.Ping(ctx).Err(); err == nil {
		t.Error("a plain-text client got an answer from the TLS-only server")
	}
	if files.CA == "" || files.ClientKey == "" {
		t.Errorf("missing files: %+v", files)
	}
}

func TestStartSentinel(t *testing.T) {
	master := Start(t)
	sentinel := StartSentinel(t, master)
	c := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName: SentinelMaster, SentinelAddrs: []string{sentinel.Addr()}, ContextTimeoutEnabled: true,
	})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("write through the sentinel: %v", err)
	}
	if got, err := master.Client().Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("the master holds %q, %v; want v", got, err)
	}
}

func TestStartReplica(t *testing.T) {
	master := Start(t)
	replica := StartReplica(t, master)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := master.Client().Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// Replication is asynchronous: poll the replica, within ctx.
	for {
		got, err := replica.Client().Get(ctx, "k").Result()
		if err == nil && got == "v" {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("the replica holds %q, %v; want v", got, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStartCluster(t *testing.T) {
	c := StartCluster(t, 3)
	cc := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 50 {
		if err := cc.Set(ctx, fmt.Sprintf("key-%d", i), i, 0).Err(); err != nil {
			t.Fatalf("cluster write %d: %v", i, err)
		}
	}
	// The keys spread over every master.
	for _, n := range c.Nodes {
		size, err := n.Client().DBSize(ctx).Result()
		if err != nil || size == 0 {
			t.Errorf("node %s holds %d keys (%v); want some", n.Addr(), size, err)
		}
	}
}

func TestSlot(t *testing.T) {
	// Values from the Redis Cluster specification and CLUSTER KEYSLOT.
	for key, want := range map[string]uint16{"123456789": 12739, "foo": 12182, "{user1000}.following": 3443} {
		if got := Slot(key); got != want {
			t.Errorf("Slot(%q) = %d, want %d", key, got, want)
		}
	}
}

func TestStartClusterWithReplicas(t *testing.T) {
	c := StartClusterWith(t, ClusterOptions{ReplicasPerMaster: 1, NodeTimeout: 2 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, key := range []string{"foo", "bar", "baz", "123456789", "bar{}", "{a}b", "x{}y{z}"} {
		got, err := c.Masters[0].Client().ClusterKeySlot(ctx, key).Result()
		if err != nil || uint16(got) != Slot(key) {
			t.Errorf("CLUSTER KEYSLOT %s = %d, %v; Slot says %d", key, got, err, Slot(key))
		}
		// The master Shard names serves the key: it accepts a write.
		if err := c.Masters[c.Shard(key)].Client().Set(ctx, key, "v", 0).Err(); err != nil {
			t.Errorf("SET %s on master %d: %v", key, c.Shard(key), err)
		}
	}
	began := time.Now()
	c.Masters[1].Kill()
	promoted := c.WaitPromoted(t, 1, 60*time.Second)
	t.Logf("replica %s promoted %v after the kill", promoted.Addr(), time.Since(began))
}
