package redistest

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-authz/gatehouse/internal/testkit"
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
	c := &Cluster{}
	busPorts := make([]int, n)
	for i := range n {
		c.Nodes = append(c.Nodes, start(t, func(srv *Server) []string {
			bus, err := testkit.FreePort()
			if err != nil {
				t.Fatalf("redistest: cluster bus port: %v", err)
			}
			busPorts[i] = bus
			return []string{
				"--cluster-enabled", "yes",
				"--cluster-config-file", filepath.Join(srv.dir, "nodes.conf"),
				"--cluster-port", strconv.Itoa(bus),
				"--cluster-node-timeout", "5000",
			}
		}, nil))
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterReadyTimeout)
	defer cancel()
	const slots = 16384
	for i, node := range c.Nodes {
		lo, hi := i*slots/n, (i+1)*slots/n-1
		if err := node.Client().Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			t.Fatalf("redistest: CLUSTER ADDSLOTSRANGE %d %d on %s: %v", lo, hi, node.Addr(), err)
		}
	}
	for i, node := range c.Nodes[1:] {
		if err := c.Nodes[0].Client().Do(ctx, "CLUSTER", "MEET", "127.0.0.1", node.port, busPorts[i+1]).Err(); err != nil {
			t.Fatalf("redistest: CLUSTER MEET %s: %v", node.Addr(), err)
		}
	}
	for _, node := range c.Nodes {
		for {
			info, err := node.Client().ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") &&
				strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d", n)) {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("redistest: the cluster did not become ready within %s (node %s: %v); CLUSTER INFO:\n%s\nlog: %s",
					clusterReadyTimeout, node.Addr(), err, info, node.logTail())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c
}
