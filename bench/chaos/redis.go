package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-authz/gatehouse/internal/testkit"
	"github.com/gatehouse-authz/gatehouse/internal/testkit/proc"
)

// gatehouse's Redis schema with the default prefix (docs/directory.md#redis-schema).
const (
	keyPrefix = "gatehouse:user:"
	channel   = "gatehouse:invalidate"
)

// Topology settings that keep failovers within a few seconds.
const (
	sentinelMaster      = "chaos"
	sentinelDownAfterMs = 1000
	clusterNodeTimeout  = 2000 // ms
	clusterSlots        = 16384
	failoverTimeout     = 30 * time.Second
)

// redisNode is one redis-server (data node or sentinel) the driver owns,
// restartable on its port.
type redisNode struct {
	ps   *proc.Group
	bin  string
	name string
	dir  string
	port int
	runs int
	// extra returns the arguments beyond the common ones, per launch.
	extra func() ([]string, error)
	// sentinelConf, when set, runs a sentinel from this file.
	sentinelConf func(port int) (string, error)
	cur          *proc.Process
	client       *redis.Client // a plain client to this node (probes, setup)
	bus          int           // cluster bus port
}

func (n *redisNode) addr() string { return "127.0.0.1:" + strconv.Itoa(n.port) }

// newRedisNode prepares a node with its own directory; launch starts it.
func newRedisNode(ps *proc.Group, bin, name string) (*redisNode, error) {
	dir := filepath.Join(ps.Dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &redisNode{ps: ps, bin: bin, name: name, dir: dir}, nil
}

// launch starts the node: on a new free port the first time (retrying when
// another process takes it first), on the same port afterwards.
func (n *redisNode) launch(ctx context.Context) error {
	restart := n.port != 0
	var last error
	for range 5 {
		if !restart {
			port, err := testkit.FreePort()
			if err != nil {
				return err
			}
			n.port = port
		}
		n.runs++
		var args []string
		if n.sentinelConf != nil {
			conf, err := n.sentinelConf(n.port)
			if err != nil {
				return err
			}
			args = []string{conf, "--sentinel"}
		} else {
			args = []string{"--port", strconv.Itoa(n.port), "--bind", "127.0.0.1",
				"--save", "", "--appendonly", "no", "--dir", n.dir,
				"--repl-diskless-sync-delay", "0"}
		}
		if n.extra != nil {
			more, err := n.extra()
			if err != nil {
				return err
			}
			args = append(args, more...)
		}
		ready := func(line string) (string, bool) {
			if n.sentinelConf != nil {
				return "", strings.Contains(line, "+monitor master")
			}
			return "", strings.Contains(line, "Ready to accept connections")
		}
		p, err := n.ps.Start(ctx, fmt.Sprintf("%s-%d", n.name, n.runs),
			command(n.bin, args, []string{"PATH=" + os.Getenv("PATH")}), readyTimeout, ready, nil)
		if err == nil {
			n.cur = p
			if n.client == nil {
				n.client = redis.NewClient(&redis.Options{
					Addr: n.addr(), ContextTimeoutEnabled: true, MaxRetries: -1, PoolSize: 4,
					DialTimeout: 500 * time.Millisecond, ReadTimeout: time.Second, WriteTimeout: time.Second,
				})
			}
			return nil
		}
		last = err
		if ctx.Err() != nil {
			break
		}
		if restart {
			time.Sleep(100 * time.Millisecond)
		}
	}
	return fmt.Errorf("start %s: %w", n.name, last)
}

// kill ends the node abruptly (SIGKILL).
func (n *redisNode) kill() error {
	if n.cur == nil {
		return nil
	}
	err := n.ps.Kill(n.cur)
	n.cur = nil
	return err
}

func (n *redisNode) signal(sig syscall.Signal) error {
	if n.cur == nil {
		return fmt.Errorf("%s is not running", n.name)
	}
	return n.cur.Signal(sig)
}

func (n *redisNode) close() {
	if n.client != nil {
		_ = n.client.Close()
	}
}

// waitPing polls the node until it answers PING, within d.
func (n *redisNode) waitPing(ctx context.Context, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		pctx, pcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		err := n.client.Ping(pctx).Err()
		pcancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s does not answer PING: %w", n.name, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// infoField returns one field of INFO section.
func infoField(ctx context.Context, c *redis.Client, section, field string) (string, error) {
	info, err := c.Info(ctx, section).Result()
	if err != nil {
		return "", fmt.Errorf("INFO %s: %w", section, err)
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("INFO %s: no %s", section, field)
}

// waitSynced waits until replica has received everything master had
// written when it was called, so that a failover loses nothing the oracle
// counts on (Redis replicates asynchronously).
func waitSynced(ctx context.Context, master, replica *redisNode) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	mo, err := infoField(ctx, master.client, "replication", "master_repl_offset")
	if err != nil {
		return fmt.Errorf("%s: %w", master.name, err)
	}
	want, err := strconv.ParseInt(mo, 10, 64)
	if err != nil {
		return fmt.Errorf("%s: master_repl_offset %q: %w", master.name, mo, err)
	}
	for {
		ro, err := infoField(ctx, replica.client, "replication", "slave_repl_offset")
		if err == nil {
			if got, perr := strconv.ParseInt(ro, 10, 64); perr == nil && got >= want {
				return nil
			}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s did not catch up with %s (offset %d): %v", replica.name, master.name, want, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// isMaster reports whether the node says it is a master.
func isMaster(ctx context.Context, n *redisNode) bool {
	role, err := infoField(ctx, n.client, "replication", "role")
	return err == nil && role == "master"
}

// --- deployments ---------------------------------------------------------

// deployKind names a Redis deployment.
type deployKind uint8

const (
	standalone deployKind = iota
	sentinel
	cluster
)

func (k deployKind) String() string {
	return [...]string{"standalone", "sentinel", "cluster"}[k]
}

// deployment is one Redis deployment with its gatehouse URL, the driver's
// own client (it writes the records as an operator would) and its model.
type deployment struct {
	kind  deployKind
	url   string
	rdb   redis.UniversalClient
	model *model

	node *redisNode // standalone
	// Sentinel: one master, one replica, one sentinel (quorum 1).
	master, replica, sentinel *redisNode
	// Cluster: three masters, each with a replica; slot ranges as
	// assigned by startCluster.
	masters, replicas []*redisNode
	ranges            [][2]int
}

// shardOfKey returns the shard holding key: its master's index in a
// Cluster, 0 otherwise.
func (d *deployment) shardOfKey(key string) int {
	if d.kind != cluster {
		return 0
	}
	slot := keySlot(key)
	for i, r := range d.ranges {
		if slot >= r[0] && slot <= r[1] {
			return i
		}
	}
	return 0
}

func (d *deployment) shards() int {
	if d.kind == cluster {
		return len(d.masters)
	}
	return 1
}

func (d *deployment) nodes() []*redisNode {
	var all []*redisNode
	for _, n := range []*redisNode{d.node, d.master, d.replica, d.sentinel} {
		if n != nil {
			all = append(all, n)
		}
	}
	return append(append(all, d.masters...), d.replicas...)
}

func (d *deployment) close() {
	if d.rdb != nil {
		_ = d.rdb.Close()
	}
	for _, n := range d.nodes() {
		n.close()
	}
}

// Client options of the driver: short bounds, so that a write to a dead
// node fails fast (the oracle then treats the record as in doubt).
const (
	driverDialTimeout = 500 * time.Millisecond
	driverIOTimeout   = time.Second
)

func startStandalone(ctx context.Context, ps *proc.Group, bin string) (*deployment, error) {
	n, err := newRedisNode(ps, bin, "redis")
	if err != nil {
		return nil, err
	}
	d := &deployment{kind: standalone, node: n}
	if err := n.launch(ctx); err != nil {
		return d, err
	}
	d.url = "redis://" + n.addr() + "/0"
	d.rdb = redis.NewClient(&redis.Options{Addr: n.addr(), ContextTimeoutEnabled: true,
		DialTimeout: driverDialTimeout, ReadTimeout: driverIOTimeout, WriteTimeout: driverIOTimeout, MaxRetries: -1})
	return d, nil
}

func startSentinel(ctx context.Context, ps *proc.Group, bin string) (*deployment, error) {
	d := &deployment{kind: sentinel}
	var err error
	if d.master, err = newRedisNode(ps, bin, "sentinel-master"); err != nil {
		return d, err
	}
	if d.replica, err = newRedisNode(ps, bin, "sentinel-replica"); err != nil {
		return d, err
	}
	if d.sentinel, err = newRedisNode(ps, bin, "sentinel"); err != nil {
		return d, err
	}
	if err := d.master.launch(ctx); err != nil {
		return d, err
	}
	d.replica.extra = func() ([]string, error) {
		return []string{"--replicaof", "127.0.0.1", strconv.Itoa(d.master.port)}, nil
	}
	if err := d.replica.launch(ctx); err != nil {
		return d, err
	}
	s := d.sentinel
	s.sentinelConf = func(port int) (string, error) {
		conf := filepath.Join(s.dir, "sentinel.conf")
		body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel resolve-hostnames no\n"+
			"sentinel monitor %s 127.0.0.1 %d 1\n"+
			"sentinel down-after-milliseconds %s %d\n"+
			"sentinel failover-timeout %s 10000\n",
			port, s.dir, sentinelMaster, d.master.port, sentinelMaster, sentinelDownAfterMs, sentinelMaster)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			return "", fmt.Errorf("sentinel config: %w", err)
		}
		return conf, nil
	}
	if err := s.launch(ctx); err != nil {
		return d, err
	}
	// The sentinel must know the replica before the master dies, or it has
	// nothing to promote.
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.addr(), ContextTimeoutEnabled: true})
	defer sc.Close()
	for {
		reps, err := sc.Replicas(wctx, sentinelMaster).Result()
		if err == nil && len(reps) == 1 {
			if flags, ok := reps[0]["flags"]; ok && flags == "slave" {
				if reps[0]["master-link-status"] == "ok" {
					break
				}
			}
		}
		if wctx.Err() != nil {
			return d, fmt.Errorf("sentinel does not see a healthy replica of %s: %v %v", sentinelMaster, reps, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.url = fmt.Sprintf("redis-sentinel://%s/0?master_name=%s", s.addr(), sentinelMaster)
	d.rdb = redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName: sentinelMaster, SentinelAddrs: []string{s.addr()}, ContextTimeoutEnabled: true,
		DialTimeout: driverDialTimeout, ReadTimeout: driverIOTimeout, WriteTimeout: driverIOTimeout, MaxRetries: -1,
	})
	return d, nil
}

// sentinelFailedOver reports whether the sentinel names the replica as the
// master and the replica has taken the role.
func (d *deployment) sentinelFailedOver(ctx context.Context) bool {
	sc := redis.NewSentinelClient(&redis.Options{Addr: d.sentinel.addr(), ContextTimeoutEnabled: true,
		DialTimeout: driverDialTimeout, ReadTimeout: driverIOTimeout})
	defer sc.Close()
	addr, err := sc.GetMasterAddrByName(ctx, sentinelMaster).Result()
	if err != nil || len(addr) != 2 || addr[1] != strconv.Itoa(d.replica.port) {
		return false
	}
	return isMaster(ctx, d.replica)
}

// startCluster starts three masters and a replica for each, assigns the
// slots with CLUSTER ADDSLOTSRANGE, joins them with CLUSTER MEET and
// attaches each replica with CLUSTER REPLICATE (what `redis-cli --cluster
// create --cluster-replicas 1` does). cluster-require-full-coverage is off,
// so that while one shard is down the others keep answering: a 503 for a
// user of a live shard is then gatehouse's own doing.
func startCluster(ctx context.Context, ps *proc.Group, bin string) (*deployment, error) {
	const n = 3
	d := &deployment{kind: cluster}
	var all []*redisNode
	for i := range 2 * n {
		role := "master"
		if i >= n {
			role = "replica"
		}
		node, err := newRedisNode(ps, bin, fmt.Sprintf("cluster-%s-%d", role, i%n))
		if err != nil {
			return d, err
		}
		node.extra = func() ([]string, error) {
			p, err := testkit.FreePort()
			if err != nil {
				return nil, err
			}
			node.bus = p
			return []string{"--cluster-enabled", "yes",
				"--cluster-config-file", filepath.Join(node.dir, "nodes.conf"),
				"--cluster-port", strconv.Itoa(p),
				"--cluster-node-timeout", strconv.Itoa(clusterNodeTimeout),
				"--cluster-require-full-coverage", "no"}, nil
		}
		if err := node.launch(ctx); err != nil {
			return d, err
		}
		if i < n {
			d.masters = append(d.masters, node)
		} else {
			d.replicas = append(d.replicas, node)
		}
		all = append(all, node)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for i, m := range d.masters {
		lo, hi := i*clusterSlots/n, (i+1)*clusterSlots/n-1
		d.ranges = append(d.ranges, [2]int{lo, hi})
		if err := m.client.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			return d, fmt.Errorf("CLUSTER ADDSLOTSRANGE on %s: %w", m.name, err)
		}
	}
	for _, node := range all[1:] {
		if err := all[0].client.Do(ctx, "CLUSTER", "MEET", "127.0.0.1", node.port, node.bus).Err(); err != nil {
			return d, fmt.Errorf("CLUSTER MEET %s: %w", node.name, err)
		}
	}
	if err := waitCluster(ctx, all, func(info string) bool {
		return strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d", 2*n))
	}); err != nil {
		return d, err
	}
	for i, r := range d.replicas {
		id, err := d.masters[i].client.Do(ctx, "CLUSTER", "MYID").Text()
		if err != nil {
			return d, fmt.Errorf("CLUSTER MYID on %s: %w", d.masters[i].name, err)
		}
		if err := r.client.Do(ctx, "CLUSTER", "REPLICATE", id).Err(); err != nil {
			return d, fmt.Errorf("CLUSTER REPLICATE on %s: %w", r.name, err)
		}
	}
	for i, r := range d.replicas {
		for {
			st, err := infoField(ctx, r.client, "replication", "master_link_status")
			if err == nil && st == "up" {
				break
			}
			if ctx.Err() != nil {
				return d, fmt.Errorf("%s never linked to %s: %v", r.name, d.masters[i].name, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if err := waitCluster(ctx, all, func(info string) bool { return strings.Contains(info, "cluster_state:ok") }); err != nil {
		return d, err
	}
	// The driver computes slots itself (shardOfKey); check it agrees with
	// Redis, or the oracle would blame the wrong shard.
	for _, key := range []string{channel, keyPrefix + "c4a05001-0000-4000-8000-000000000000", "123456789"} {
		got, err := d.masters[0].client.ClusterKeySlot(ctx, key).Result()
		if err != nil {
			return d, fmt.Errorf("CLUSTER KEYSLOT: %w", err)
		}
		if int(got) != keySlot(key) {
			return d, fmt.Errorf("slot of %q: Redis says %d, the driver %d", key, got, keySlot(key))
		}
	}
	addrs := make([]string, n)
	for i, m := range d.masters {
		addrs[i] = m.addr()
	}
	d.url = "redis-cluster://" + strings.Join(addrs, ",")
	d.rdb = redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, ContextTimeoutEnabled: true,
		DialTimeout: driverDialTimeout, ReadTimeout: driverIOTimeout, WriteTimeout: driverIOTimeout, MaxRetries: -1})
	return d, nil
}

// waitCluster waits until every node's CLUSTER INFO satisfies ok.
func waitCluster(ctx context.Context, nodes []*redisNode, ok func(info string) bool) error {
	for _, node := range nodes {
		for {
			info, err := node.client.ClusterInfo(ctx).Result()
			if err == nil && ok(info) {
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("cluster not ready (node %s: %v): %s", node.name, err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// clusterFailedOver reports whether replica has become the master of
// shard and every live master routes the shard's first slot to it.
func (d *deployment) clusterFailedOver(ctx context.Context, shard int) bool {
	r := d.replicas[shard]
	if !isMaster(ctx, r) {
		return false
	}
	for i, m := range d.masters {
		if i == shard {
			continue
		}
		//lint:ignore SA1019 CLUSTER SLOTS is what go-redis's ClusterClient routes by, so it is what a failover must have updated
		slots, err := m.client.ClusterSlots(ctx).Result()
		if err != nil {
			return false
		}
		found := false
		for _, s := range slots {
			if s.Start <= d.ranges[shard][0] && d.ranges[shard][0] <= s.End && len(s.Nodes) > 0 {
				found = s.Nodes[0].Addr == r.addr()
			}
		}
		if !found {
			return false
		}
	}
	// And it answers a read of one of the shard's keys itself.
	key := ""
	for i := 0; key == ""; i++ {
		k := "chaos-probe-" + strconv.Itoa(i)
		if s := keySlot(k); s >= d.ranges[shard][0] && s <= d.ranges[shard][1] {
			key = k
		}
	}
	err := r.client.Get(ctx, key).Err()
	return err == nil || errors.Is(err, redis.Nil)
}

// keySlot is Redis Cluster's hash slot of key: CRC16 (XMODEM) of the key,
// or of its {hash tag}, modulo 16384.
func keySlot(key string) int {
	if s := strings.IndexByte(key, '{'); s >= 0 {
		if e := strings.IndexByte(key[s+1:], '}'); e > 0 {
			key = key[s+1 : s+1+e]
		}
	}
	var crc uint16
	for i := range len(key) {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc % clusterSlots)
}
