package redistest

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-authz/gatehouse/internal/testkit"
)

// ClusterOptions shape StartClusterWith.
type ClusterOptions struct {
	// Masters is the number of masters (at least 3, the default).
	Masters int
	// ReplicasPerMaster gives every master that many replicas, so that the
	// cluster promotes one when its master dies.
	ReplicasPerMaster int
	// NodeTimeout is cluster-node-timeout: how long a node may be
	// unreachable before the others mark it failed (default 5 s). Failover
	// tests make it short, so that a promotion takes seconds.
	NodeTimeout time.Duration
	// AllowReadsWhenDown sets cluster-allow-reads-when-down: while a
	// master is failed and not yet replaced, the other masters still
	// answer reads (by default every node refuses every command with
	// CLUSTERDOWN until the slots are covered again).
	AllowReadsWhenDown bool
}

// HACluster is a Redis Cluster with replicas, owned by a test.
type HACluster struct {
	Cluster
	// Masters[i] serves the i-th slot range at the start; Replicas[i] are
	// its replicas.
	Masters  []*Server
	Replicas [][]*Server
}

// StartClusterWith launches a cluster as StartCluster does, with replicas
// attached by CLUSTER REPLICATE, and waits until every node reports
// cluster_state:ok and every replica's link to its master is up.
func StartClusterWith(t testing.TB, o ClusterOptions) *HACluster {
	t.Helper()
	if o.Masters == 0 {
		o.Masters = 3
	}
	if o.Masters < 3 {
		t.Fatalf("redistest: a cluster needs at least 3 masters, got %d", o.Masters)
	}
	if o.NodeTimeout <= 0 {
		o.NodeTimeout = 5 * time.Second
	}
	total := o.Masters * (1 + o.ReplicasPerMaster)
	readsWhenDown := "no"
	if o.AllowReadsWhenDown {
		readsWhenDown = "yes"
	}
	c := &HACluster{}
	busPorts := make([]int, total)
	for i := range total {
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
				"--cluster-node-timeout", strconv.FormatInt(o.NodeTimeout.Milliseconds(), 10),
				// A master streams its data set to a new replica at once.
				"--repl-diskless-sync-delay", "0",
				"--cluster-allow-reads-when-down", readsWhenDown,
				// A replica always stands for election, however long
				// its link to the dead master has been down: on a loaded
				// machine the link can look stale before the kill, and a
				// replica that thinks its data too old never fails over.
				"--cluster-replica-validity-factor", "0",
			}
		}, nil))
	}
	c.Masters = c.Nodes[:o.Masters]
	c.Replicas = make([][]*Server, o.Masters)
	for i := range o.Masters {
		for r := range o.ReplicasPerMaster {
			c.Replicas[i] = append(c.Replicas[i], c.Nodes[o.Masters+i*o.ReplicasPerMaster+r])
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterReadyTimeout)
	defer cancel()
	const slots = 16384
	for i, node := range c.Masters {
		lo, hi := i*slots/o.Masters, (i+1)*slots/o.Masters-1
		if err := node.Client().Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			t.Fatalf("redistest: CLUSTER ADDSLOTSRANGE %d %d on %s: %v", lo, hi, node.Addr(), err)
		}
	}
	for i, node := range c.Nodes[1:] {
		if err := c.Nodes[0].Client().Do(ctx, "CLUSTER", "MEET", "127.0.0.1", node.port, busPorts[i+1]).Err(); err != nil {
			t.Fatalf("redistest: CLUSTER MEET %s: %v", node.Addr(), err)
		}
	}
	ids := make([]string, o.Masters)
	for i, m := range c.Masters {
		id, err := m.Client().Do(ctx, "CLUSTER", "MYID").Text()
		if err != nil {
			t.Fatalf("redistest: CLUSTER MYID on %s: %v", m.Addr(), err)
		}
		ids[i] = id
	}
	for i, rs := range c.Replicas {
		for _, r := range rs {
			// The replica must know the master (gossip) before it can
			// replicate it.
			for {
				err := r.Client().Do(ctx, "CLUSTER", "REPLICATE", ids[i]).Err()
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("redistest: CLUSTER REPLICATE on %s: %v", r.Addr(), err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	for _, node := range c.Nodes {
		waitClusterOK(t, ctx, node, total)
	}
	for _, rs := range c.Replicas {
		for _, r := range rs {
			for {
				info, err := r.Client().Info(ctx, "replication").Result()
				if err == nil && strings.Contains(info, "master_link_status:up") {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("redistest: replica %s never linked: %v\n%s", r.Addr(), err, info)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	return c
}

func waitClusterOK(t testing.TB, ctx context.Context, node *Server, known int) {
	t.Helper()
	for {
		info, err := node.Client().ClusterInfo(ctx).Result()
		if err == nil && strings.Contains(info, "cluster_state:ok") &&
			strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d", known)) {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("redistest: the cluster did not become ready within %s (node %s: %v); CLUSTER INFO:\n%s\nlog: %s",
				clusterReadyTimeout, node.Addr(), err, info, node.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitPromoted waits until one of the replicas of the i-th master is a
// master itself and every node still running reports cluster_state:ok, and
// returns that replica. It fails the test after bound.
func (c *HACluster) WaitPromoted(t testing.TB, i int, bound time.Duration) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	for {
		for _, r := range c.Replicas[i] {
			info, err := r.Client().Info(ctx, "replication").Result()
			if err != nil || !strings.Contains(info, "role:master") {
				continue
			}
			if c.allOK(ctx) {
				return r
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("redistest: no replica of master %d was promoted within %s\n%s", i, bound, c.diagnose(i))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// diagnose describes a failover that did not happen: what each running
// node says of the cluster, and the log of the i-th master's replicas,
// whose election it was.
func (c *HACluster) diagnose(i int) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var b strings.Builder
	for _, n := range c.Nodes {
		n.mu.Lock()
		running := n.cmd != nil
		n.mu.Unlock()
		if !running {
			fmt.Fprintf(&b, "node %s: not running\n", n.Addr())
			continue
		}
		info, err := n.Client().ClusterInfo(ctx).Result()
		nodes, err2 := n.Client().ClusterNodes(ctx).Result()
		fmt.Fprintf(&b, "node %s: CLUSTER INFO (%v):\n%s\nCLUSTER NODES (%v):\n%s\n", n.Addr(), err, info, err2, nodes)
	}
	for _, r := range c.Replicas[i] {
		fmt.Fprintf(&b, "replica %s log:\n%s\n", r.Addr(), r.logTail())
	}
	return b.String()
}

// allOK reports whether every running node says cluster_state:ok.
func (c *HACluster) allOK(ctx context.Context) bool {
	for _, n := range c.Nodes {
		n.mu.Lock()
		running := n.cmd != nil
		n.mu.Unlock()
		if !running {
			continue
		}
		info, err := n.Client().ClusterInfo(ctx).Result()
		if err != nil || !strings.Contains(info, "cluster_state:ok") {
			return false
		}
	}
	return true
}

// Shard returns the index of the master that served key's slot at the
// start.
func (c *HACluster) Shard(key string) int {
	const slots = 16384
	n, s := len(c.Masters), int(Slot(key))
	for i := n - 1; i > 0; i-- {
		if s >= i*slots/n {
			return i
		}
	}
	return 0
}

// Slot is the Redis Cluster hash slot of key: CRC16 (XMODEM) of the key,
// or of its hash tag (the part between the first "{" and the next "}",
// when not empty), modulo 16384.
func Slot(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for k := 0; k < len(key); k++ {
		crc ^= uint16(key[k]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc % 16384
}
