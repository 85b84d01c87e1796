package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-authz/gatehouse/internal/testkit/redistest"
	"github.com/gatehouse-authz/gatehouse/userstore/redisstore"
)

// testUser returns the i-th of a family of valid user ids.
func testUser(i int) string { return fmt.Sprintf("6f1c2f9e-3b7a-4c52-9d0e-%012d", i) }

// tryCheck is check for goroutines other than the test's: it reports a gRPC
// error instead of failing the test.
func (r *running) tryCheck(authorization string) (*authv3.CheckResponse, error) {
	headers := map[string]string{":method": "GET", ":path": "/v1/rooms", ":authority": "api.example.com", "authorization": authorization}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return authv3.NewAuthorizationClient(r.conn).Check(ctx, &authv3.CheckRequest{
		Attributes: &authv3.AttributeContext{
			Request: &authv3.AttributeContext_Request{
				Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/v1/rooms", Host: "api.example.com", Headers: headers},
			},
		},
	})
}

// outcome names a check's answer for tallies: "allow", "503", or the deny's
// HTTP status.
func outcome(resp *authv3.CheckResponse, err error) string {
	switch {
	case err != nil:
		return "grpc-error"
	case allowed(resp):
		return "allow"
	case httpStatus(resp) == http.StatusServiceUnavailable:
		return "503"
	default:
		return fmt.Sprint(httpStatus(resp))
	}
}

// tally counts outcomes; safe for concurrent use.
type tally struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *tally) add(k string) {
	c.mu.Lock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[k]++
	c.mu.Unlock()
}

func (c *tally) get(k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[k]
}

func (c *tally) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprint(c.n)
}

// TestWrongTypedKeyUnderLoad: a string where a user hash belongs is that
// user's problem. Under concurrent load with that key asked for all the
// time, healthy users never get a 503, the circuit stays closed, the bad
// record is denied (never allowed), counted, and logged within the budget.
func TestWrongTypedKeyUnderLoad(t *testing.T) {
	rs := redistest.Start(t)
	cfg := redisConfig(t, rs.URL())
	cfg.CacheTTL = time.Millisecond // nearly every check reads Redis
	cfg.CacheNegativeTTL = 0
	cfg.CacheStaleIfError = 0 // a 503 cannot hide behind a stale entry
	cfg.LogLevel = slog.LevelInfo
	cfg.LogRate = 5
	const healthy = 8
	for i := range healthy {
		hset(t, rs, testUser(i), "1")
	}
	bad := testUser(100)
	redisDo(t, rs.Client(), "SET", "gatehouse:user:"+bad, "1") // a string, not a hash
	r := start(t, cfg, Options{})

	var good, worse tally
	stop := time.Now().Add(2 * time.Second)
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; time.Now().Before(stop); i++ {
				good.add(outcome(r.tryCheck("Bearer " + token(t, testUser(i%healthy)))))
			}
		}()
	}
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := "Bearer " + token(t, bad)
			for time.Now().Before(stop) {
				worse.add(outcome(r.tryCheck(tok)))
			}
		}()
	}
	wg.Wait()
	t.Logf("healthy users: %s; wrong-typed record: %s", &good, &worse)
	if n := good.get("allow"); n == 0 || n != sumTally(&good) {
		t.Errorf("healthy users: %s; want every check allowed", &good)
	}
	if worse.get("allow") != 0 || worse.get("503") != 0 || worse.get("401") == 0 {
		t.Errorf("wrong-typed record: %s; want 401 denies only (never an allow, no 503)", &worse)
	}
	if got := reason(t, r.check(t, "Bearer "+token(t, bad))); got != "User account is disabled." {
		t.Errorf("wrong-typed record denied with %q", got)
	}
	logs := r.logs.String()
	if strings.Contains(logs, "directory circuit opened") {
		t.Error("the circuit opened for one bad record")
	}
	_, body := r.get(t, "/readyz?verbose")
	if !strings.Contains(body, "circuit closed") {
		t.Errorf("/readyz?verbose = %q; want the circuit closed", body)
	}
	_, metrics := r.get(t, "/metrics")
	if !strings.Contains(metrics, `gatehouse_directory_lookups_total{layer="redis",outcome="invalid"}`) ||
		!strings.Contains(metrics, `gatehouse_directory_lookups_total{layer="cache",outcome="invalid"}`) {
		t.Errorf("/metrics does not count invalid records:\n%s", grepLines(metrics, "gatehouse_directory_lookups_total"))
	}
	lines := strings.Count(logs, "invalid directory record; denied")
	if lines == 0 {
		t.Error("the invalid record is not logged")
	}
	// 5 a second for about 2 s, plus a summary line per second.
	if lines > 20 {
		t.Errorf("%d log lines about the invalid record in about 2 s; want at most the budget (5/s)", lines)
	}
}

func sumTally(c *tally) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.n {
		n += v
	}
	return n
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestStaleWarningsWithinBudget: during an outage every check served from
// a stale entry is a warning; they go through the log budget.
func TestStaleWarningsWithinBudget(t *testing.T) {
	rs := redistest.Start(t)
	cfg := redisConfig(t, rs.URL())
	cfg.CacheTTL = 50 * time.Millisecond
	cfg.CacheStaleIfError = time.Minute
	cfg.RedisTimeout = 200 * time.Millisecond
	cfg.LogLevel = slog.LevelInfo
	cfg.LogRate = 5
	hset(t, rs, activeUser, "1")
	r := start(t, cfg, Options{})
	tok := "Bearer " + token(t, activeUser)
	if !allowed(r.check(t, tok)) {
		t.Fatal("active user denied")
	}
	rs.Kill()
	time.Sleep(2 * cfg.CacheTTL)
	var served atomic.Int64
	stop := time.Now().Add(1500 * time.Millisecond)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				if resp, err := r.tryCheck(tok); err == nil && allowed(resp) {
					served.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	lines := strings.Count(r.logs.String(), "serving stale cached entry")
	t.Logf("%d stale answers, %d warning lines", served.Load(), lines)
	if served.Load() < 50 {
		t.Fatalf("only %d stale answers: the test proves nothing", served.Load())
	}
	if lines == 0 || lines > 20 {
		t.Errorf("%d stale-entry warnings for %d stale answers in 1.5 s; want some, within the budget (5/s)", lines, served.Load())
	}
	if !strings.Contains(r.logs.String(), "log lines suppressed") {
		t.Error("the suppressed lines are not reported")
	}
}

// clusterUsers writes per users active on each shard of cl and returns
// their ids, by shard.
func clusterUsers(t *testing.T, cl *redistest.HACluster, per int) [][]string {
	t.Helper()
	byShard := make([][]string, len(cl.Masters))
	w := cl.Client(t)
	for i := 0; ; i++ {
		id := testUser(1000 + i)
		s := cl.Shard("gatehouse:user:" + id)
		if len(byShard[s]) == per {
			full := true
			for _, ids := range byShard {
				full = full && len(ids) == per
			}
			if full {
				return byShard
			}
			continue
		}
		byShard[s] = append(byShard[s], id)
		redisDo(t, w, "HSET", "gatehouse:user:"+id, "active", "1")
	}
}

func clusterConfig(t *testing.T, cl *redistest.HACluster) testConfig {
	cfg := baseConfig(t)
	cfg.Redis = &redisstore.ClientConfig{ClusterAddrs: cl.Addrs()}
	cfg.RedisTimeout = 300 * time.Millisecond
	cfg.LogLevel = slog.LevelInfo
	return cfg
}

// TestClusterMasterKilled: kill -9 of a Cluster master costs only its own
// shard, and only until its replica is promoted. Users on the other shards
// never get a 503; the dead shard answers again soon after the promotion
// (not after go-redis's 60 s topology refresh). The cluster runs with
// cluster-allow-reads-when-down, as docs/directory.md#redis-deployments asks: without it Redis
// itself refuses every read with CLUSTERDOWN between the failure and the
// promotion.
func TestClusterMasterKilled(t *testing.T) {
	cl := redistest.StartClusterWith(t, redistest.ClusterOptions{ReplicasPerMaster: 1, NodeTimeout: 2 * time.Second, AllowReadsWhenDown: true})
	users := clusterUsers(t, cl, 3)
	cfg := clusterConfig(t, cl)
	cfg.CacheTTL = time.Millisecond // every check asks Redis
	cfg.CacheNegativeTTL = 0
	cfg.CacheStaleIfError = 0
	// Lookups of the dead master fail at once (connection refused, then
	// its circuit is open): the timeout only spares a healthy lookup
	// that a loaded test machine delays.
	cfg.RedisTimeout = time.Second
	r := start(t, cfg, Options{})
	for _, ids := range users {
		for _, id := range ids {
			if resp := r.check(t, "Bearer "+token(t, id)); !allowed(resp) {
				t.Fatalf("user %s denied before the kill: %d", id, httpStatus(resp))
			}
		}
	}

	const dead = 0
	var healthy, dying tally
	var lastDeadFailure atomic.Int64 // unix nanos of the dead shard's last non-allow
	killed := time.Now()
	cl.Masters[dead].Kill()
	// Only the dead shard's users ask, until a circuit opens; then the
	// other shards' users must still be served: the circuit that opened
	// is the dead master's alone.
	opened := false
	burstEnd := time.Now().Add(10 * time.Second)
	for !opened && time.Now().Before(burstEnd) {
		var bw sync.WaitGroup
		for _, id := range users[dead] {
			for range 4 {
				bw.Add(1)
				go func() {
					defer bw.Done()
					if o := outcome(r.tryCheck("Bearer " + token(t, id))); o != "allow" {
						dying.add(o)
					}
				}()
			}
		}
		bw.Wait()
		opened = strings.Contains(r.logs.String(), "directory circuit opened")
	}
	if !opened {
		t.Fatalf("no circuit opened within 10 s of the kill: %s", &dying)
	}
	var duringOpen tally
	for s, ids := range users {
		if s != dead {
			for _, id := range ids {
				duringOpen.add(outcome(r.tryCheck("Bearer " + token(t, id))))
			}
		}
	}
	if n := duringOpen.get("allow"); n != sumTally(&duringOpen) {
		t.Errorf("with the dead master's circuit open, the other shards' users got %s; want every check allowed", &duringOpen)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	// The dead shard's users ask more often than the others: with one
	// circuit for the whole cluster, their failures in a row open it for
	// everyone.
	for s, ids := range users {
		workers, pause := 1, 5*time.Millisecond
		if s == dead {
			workers, pause = 3, time.Millisecond
		}
		for _, id := range ids {
			for range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					tok := "Bearer " + token(t, id)
					for {
						select {
						case <-done:
							return
						default:
						}
						o := outcome(r.tryCheck(tok))
						if s == dead {
							dying.add(o)
							if o != "allow" {
								lastDeadFailure.Store(time.Now().UnixNano())
							}
						} else {
							healthy.add(o)
						}
						time.Sleep(pause)
					}
				}()
			}
		}
	}
	cl.WaitPromoted(t, dead, 30*time.Second)
	promoted := time.Now()
	// Recovered: the dead shard's users have been allowed for a while.
	const quiet = time.Second
	deadline := promoted.Add(15 * time.Second)
	for {
		last := time.Unix(0, lastDeadFailure.Load())
		if last.After(killed) && time.Since(last) > quiet {
			break
		}
		if time.Now().After(deadline) {
			close(done)
			wg.Wait()
			t.Fatalf("the dead shard still fails %v after the promotion (%v after the kill): %s; healthy shards: %s",
				time.Since(promoted), time.Since(killed), &dying, &healthy)
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(done)
	wg.Wait()
	recovered := time.Unix(0, lastDeadFailure.Load())
	t.Logf("promotion %v after the kill; the dead shard answered again %v after the promotion (%v after the kill)",
		promoted.Sub(killed).Round(time.Millisecond), recovered.Sub(promoted).Round(time.Millisecond), recovered.Sub(killed).Round(time.Millisecond))
	t.Logf("healthy shards: %s (%s while the dead master's circuit was open); dead shard: %s", &healthy, &duringOpen, &dying)
	if n := healthy.get("allow"); n == 0 || n != sumTally(&healthy) {
		t.Errorf("healthy shards: %s; want every check allowed", &healthy)
	}
	if dying.get("allow") == 0 || dying.get("503") == 0 || dying.get("401") != 0 {
		t.Errorf("dead shard: %s; want 503s while it had no master, allows after", &dying)
	}
	if d := recovered.Sub(promoted); d > 5*time.Second {
		t.Errorf("the dead shard answered again %v after the promotion; want within a few seconds", d)
	}
}

// subscribedNode returns the cluster node that holds gatehouse's
// subscription (classic pub/sub subscriptions are local to a node), or nil.
func subscribedNode(cl *redistest.HACluster, channel string) *redistest.Server {
	for _, n := range cl.Nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		got, err := n.Client().PubSubNumSub(ctx, channel).Result()
		cancel()
		if err == nil && got[channel] > 0 {
			return n
		}
	}
	return nil
}

// TestClusterSubscriptionNodeKilled: the node holding the invalidation
// subscription dies; gatehouse subscribes again on a live node at once, and
// an invalidation published after the promotion reaches its cache within
// seconds (not after go-redis's 60 s topology refresh).
func TestClusterSubscriptionNodeKilled(t *testing.T) {
	cl := redistest.StartClusterWith(t, redistest.ClusterOptions{ReplicasPerMaster: 1, NodeTimeout: 2 * time.Second})
	users := clusterUsers(t, cl, 2)
	cfg := clusterConfig(t, cl)
	cfg.CacheTTL = time.Hour // only an invalidation (or a purge) explains a deny
	r := start(t, cfg, Options{})
	const channel = "gatehouse:invalidate"
	var holder *redistest.Server
	eventually(t, "the server subscribes", func() bool { holder = subscribedNode(cl, channel); return holder != nil })
	shard := -1
	for i, m := range cl.Masters {
		if m == holder {
			shard = i
		}
	}
	var victims []string
	for i, ids := range users {
		if i != shard {
			victims = append(victims, ids...)
		}
	}
	for _, id := range victims {
		if !allowed(r.check(t, "Bearer "+token(t, id))) {
			t.Fatalf("user %s denied", id)
		}
	}
	killed := time.Now()
	holder.Kill()
	if shard >= 0 {
		cl.WaitPromoted(t, shard, 30*time.Second)
		t.Logf("the subscription was on master %d; its replica was promoted %v after the kill", shard, time.Since(killed))
	} else {
		t.Log("the subscription was on a replica")
	}
	w := cl.Client(t)
	published := time.Now()
	redisDo(t, w, "HSET", "gatehouse:user:"+victims[0], "active", "0")
	publishLive(t, cl, channel, "user:"+victims[0])
	bound := 3 * time.Second
	for reason(t, r.check(t, "Bearer "+token(t, victims[0]))) != "User account is disabled." {
		if time.Since(published) > bound {
			t.Fatalf("a user disabled and invalidated after the promotion is still allowed %v later (%v after the kill)",
				time.Since(published), time.Since(killed))
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("the invalidation took effect %v after it was published (%v after the kill)", time.Since(published), time.Since(killed))
	// The new subscription hears messages: not only the purge.
	eventually(t, "the server subscribes again", func() bool { return subscribedNode(cl, channel) != nil })
	if !allowed(r.check(t, "Bearer "+token(t, victims[1]))) {
		t.Fatal("a second user is denied")
	}
	redisDo(t, w, "HSET", "gatehouse:user:"+victims[1], "active", "0")
	publishLive(t, cl, channel, "user:"+victims[1])
	eventually(t, "a message on the new subscription", func() bool {
		return reason(t, r.check(t, "Bearer "+token(t, victims[1]))) == "User account is disabled."
	})
	if !strings.Contains(r.logs.String(), "in-process cache purged") {
		t.Error("no purge after the resubscription")
	}
}

// publishLive publishes msg on a running cluster node: a classic PUBLISH
// reaches the subscribers of every node.
func publishLive(t *testing.T, cl *redistest.HACluster, channel, msg string) {
	t.Helper()
	for _, n := range cl.Nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		err := n.Client().Publish(ctx, channel, msg).Err()
		cancel()
		if err == nil {
			return
		}
	}
	t.Fatal("no node accepted PUBLISH")
}

// TestSentinelSwitchResubscribes: after a Sentinel failover the listener
// follows +switch-master at once: an invalidation published on the new
// master right after the switch reaches the cache within seconds, not when
// Sentinel finally disconnects the old master's clients.
func TestSentinelSwitchResubscribes(t *testing.T) {
	master := redistest.Start(t)
	replica := redistest.StartReplica(t, master)
	sentinel := redistest.StartSentinel(t, master)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	sc := redis.NewSentinelClient(&redis.Options{Addr: sentinel.Addr(), ContextTimeoutEnabled: true})
	defer sc.Close()
	eventually(t, "the sentinel sees a healthy replica", func() bool {
		replicas, err := sc.Replicas(ctx, redistest.SentinelMaster).Result()
		return err == nil && len(replicas) > 0 && replicas[0]["flags"] == "slave" && replicas[0]["master-link-status"] == "ok"
	})
	redisDo(t, master.Client(), "HSET", "gatehouse:user:"+activeUser, "active", "1")
	redisDo(t, master.Client(), "HSET", "gatehouse:user:"+inactiveUser, "active", "1")
	eventually(t, "the records reach the replica", func() bool {
		n, err := replica.Client().Exists(ctx, "gatehouse:user:"+activeUser, "gatehouse:user:"+inactiveUser).Result()
		return err == nil && n == 2
	})
	cfg := deployConfig(t, func(c *testConfig) {
		c.Redis = &redisstore.ClientConfig{SentinelAddrs: []string{sentinel.Addr()}, SentinelMaster: redistest.SentinelMaster}
		c.RedisTimeout = 500 * time.Millisecond
	})
	r := start(t, cfg, Options{})
	tokA, tokB := "Bearer "+token(t, activeUser), "Bearer "+token(t, inactiveUser)
	if !allowed(r.check(t, tokA)) || !allowed(r.check(t, tokB)) {
		t.Fatal("active users denied")
	}
	waitSubscribed(t, master.Client(), "gatehouse:invalidate")

	// SENTINEL FAILOVER is refused until the sentinel has a recent INFO of
	// the replica.
	deadline := time.Now().Add(30 * time.Second)
	for sc.Failover(ctx, redistest.SentinelMaster).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatal("SENTINEL FAILOVER refused")
		}
		time.Sleep(100 * time.Millisecond)
	}
	eventually(t, "the sentinel names the replica master", func() bool {
		addr, err := sc.GetMasterAddrByName(ctx, redistest.SentinelMaster).Result()
		return err == nil && net.JoinHostPort(addr[0], addr[1]) == replica.Addr()
	})
	switched := time.Now()
	redisDo(t, replica.Client(), "HSET", "gatehouse:user:"+activeUser, "active", "0")
	redisDo(t, replica.Client(), "PUBLISH", "gatehouse:invalidate", "user:"+activeUser)
	for reason(t, r.check(t, tokA)) != "User account is disabled." {
		if time.Since(switched) > 3*time.Second {
			t.Fatalf("a user disabled on the new master is still allowed %v after the switch", time.Since(switched))
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("the invalidation took effect %v after the switch", time.Since(switched))
	// The subscription is on the new master now: a later message is heard.
	waitSubscribed(t, replica.Client(), "gatehouse:invalidate")
	if !allowed(r.check(t, tokB)) {
		t.Fatal("B denied")
	}
	redisDo(t, replica.Client(), "HSET", "gatehouse:user:"+inactiveUser, "active", "0")
	redisDo(t, replica.Client(), "PUBLISH", "gatehouse:invalidate", "user:"+inactiveUser)
	eventually(t, "a message published on the new master", func() bool {
		return reason(t, r.check(t, tokB)) == "User account is disabled."
	})
}
