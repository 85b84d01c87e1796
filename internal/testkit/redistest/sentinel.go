package redistest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelMaster is the master name StartSentinel monitors.
const SentinelMaster = "gatehouse-test"

// StartSentinel launches one sentinel (redis-server --sentinel) monitoring
// master under the name SentinelMaster with quorum 1, and waits until it
// reports the master's address. The sentinel's configuration file is in its
// own t.TempDir() (sentinels rewrite it).
func StartSentinel(t testing.TB, master *Server) *Server {
	t.Helper()
	s := start(t, func(srv *Server) []string {
		conf := filepath.Join(srv.dir, "sentinel.conf")
		body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor %s 127.0.0.1 %d 1\n"+
			"sentinel down-after-milliseconds %s 5000\nsentinel resolve-hostnames no\n",
			srv.port, srv.dir, SentinelMaster, master.port, SentinelMaster)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatalf("redistest: sentinel config: %v", err)
		}
		// The config file must come first; the flags that start() adds
		// (--save, --appendonly) are not sentinel options, so sentinel mode
		// gets its own argument list, see launch.
		srv.sentinelConf = conf
		return nil
	}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr(), ContextTimeoutEnabled: true})
	defer c.Close()
	for {
		addr, err := c.GetMasterAddrByName(ctx, SentinelMaster).Result()
		if err == nil && len(addr) == 2 && addr[1] == strconv.Itoa(master.port) {
			return s
		}
		if ctx.Err() != nil {
			t.Fatalf("redistest: sentinel on %s does not report master %s: %v, %v; log: %s",
				s.Addr(), SentinelMaster, addr, err, s.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// StartReplica launches a redis-server replicating master, and waits until
// its replication link is up, so that a sentinel can promote it.
func StartReplica(t testing.TB, master *Server) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	// A master waits 5 s (repl-diskless-sync-delay) for more replicas
	// before it streams its data set to the first one.
	if err := master.Client().ConfigSet(ctx, "repl-diskless-sync-delay", "0").Err(); err != nil {
		t.Fatalf("redistest: configure master %s for replication: %v", master.Addr(), err)
	}
	s := start(t, func(*Server) []string {
		return []string{"--replicaof", "127.0.0.1", strconv.Itoa(master.port)}
	}, nil)
	c := s.Client() // shared: closed with the server
	for {
		info, err := c.Info(ctx, "replication").Result()
		if err == nil && strings.Contains(info, "master_link_status:up") {
			return s
		}
		if ctx.Err() != nil {
			t.Fatalf("redistest: replica on %s never linked to master %s: %v; log: %s",
				s.Addr(), master.Addr(), err, s.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
