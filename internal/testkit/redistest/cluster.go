package redistest

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterReadyTimeout bounds the wait for a new cluster to agree on its
// slots.
const clusterReadyTimeout = 20 * time.Second

// Cluster is a Redis Cluster of masters on loopback ports, owned by a test.
type Cluster struct {
	Nodes []*Server
}

// Addrs returns every node's host:port.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr()
	}
	return out
}

// Client returns a cluster client, closed at cleanup.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	t.Helper()
	cc := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:                 c.Addrs(),
		ContextTimeoutEnabled: true,
		DialTimeout:           time.Second,
		ReadTimeout:           time.Second,
		WriteTimeout:          time.Second,
	})
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// StartCluster launches n (at least 3) cluster-enabled masters, splits the
// 16384 slots between them with CLUSTER ADDSLOTSRANGE, joins them with
// CLUSTER MEET, and waits until every node reports cluster_state:ok. It is
// what `redis-cli --cluster create --cluster-replicas 0` does, without
// needing redis-cli. Each node's cluster bus gets its own free port
// (cluster-port), so no port+10000 collision can occur.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 3 {
		t.Fatalf("redistest: a cluster needs at least 3 masters, got %d", n)
	}
	return &StartClusterWith(t, ClusterOptions{Masters: n}).Cluster
}
