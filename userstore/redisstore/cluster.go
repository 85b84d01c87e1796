package redisstore

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-authz/gatehouse/userstore"
)

// clusterReloadGap is the least time between two slot-map reloads that
// lookup errors trigger: a dead master fails every lookup of its shard, and
// one CLUSTER SLOTS per gap is enough to notice its replica's promotion.
const clusterReloadGap = 200 * time.Millisecond

// topology keeps a Cluster client's slot map fresh. go-redis reloads it
// early only on MOVED, ASK or READONLY replies; a master that died answers
// none of these (its connections are refused), so without help the client
// would keep dialling it until its periodic reload, long after the cluster
// promoted a replica.
type topology struct {
	cluster  *redis.ClusterClient
	reloaded atomic.Int64 // unix nanos of the last reload asked for
}

// newTopology returns the topology helper of a Cluster client, or nil for
// other deployments.
func newTopology(c redis.UniversalClient) *topology {
	cc, ok := c.(*redis.ClusterClient)
	if !ok {
		return nil
	}
	return &topology{cluster: cc}
}

// failed is told of every error of a read; on a Cluster, one that may come
// from a stale slot map makes the client reload it.
func (s *Store) failed(err error) {
	if s.topo != nil {
		s.topo.failed(err)
	}
}

// failed asks go-redis to reload the slot map (in the background) after an
// error that is not a Redis reply — connection refused or reset, a timeout
// — or a reply that says the cluster is changing (CLUSTERDOWN, TRYAGAIN,
// MASTERDOWN), at most once per clusterReloadGap.
func (t *topology) failed(err error) {
	var reply redis.Error
	if errors.As(err, &reply) && !redis.IsClusterDownError(err) && !redis.IsTryAgainError(err) && !redis.IsMasterDownError(err) {
		return
	}
	now := time.Now().UnixNano()
	last := t.reloaded.Load()
	if now-last < int64(clusterReloadGap) || !t.reloaded.CompareAndSwap(last, now) {
		return
	}
	t.cluster.ReloadState(context.Background())
}

// Partition names the part of the deployment that serves a record: on a
// Cluster, the address of the master serving the record's slot (as the
// client's slot map says now); "" for a standalone or Sentinel deployment,
// and when the slot map is not known. A circuit breaker kept per partition
// (userstore.Circuits) lets a dead master fail its own shard only.
func (s *Store) Partition(ctx context.Context, kind userstore.Kind, id string) string {
	if s.topo == nil {
		return ""
	}
	key, err := s.Key(kind, id)
	if err != nil {
		return ""
	}
	m, err := s.topo.cluster.MasterForKey(ctx, key)
	if err != nil {
		return ""
	}
	return m.Options().Addr
}
