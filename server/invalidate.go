package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-authz/gatehouse/internal/logbudget"
	"github.com/gatehouse-authz/gatehouse/userstore"
	"github.com/gatehouse-authz/gatehouse/userstore/redisstore"
)

// Pauses between failed attempts to subscribe (Redis down), doubling from
// the first to the second, so that the listener does not spin. A
// subscription that is lost while Redis answers is made again at once.
// A subscription that is lost within invalidationStable of being made
// counts as a failed attempt too (a node that accepts and drops it at once
// must not make the listener spin).
const (
	invalidationRetry    = 100 * time.Millisecond
	invalidationRetryMax = time.Second
	invalidationStable   = time.Second
)

// invalidationHealth is how long the listener waits for a message before it
// pings the subscription's connection; a second silence as long means the
// node is gone (hung, or cut off without a reset) and the listener
// subscribes again elsewhere.
const invalidationHealth = 5 * time.Second

// invalidator is the part of userstore.Cache the listener needs.
type invalidator interface {
	Invalidate(kind userstore.Kind, id string)
	Purge()
}

// subjectInvalidator is the part of userstore.SubjectCache the listener
// needs.
type subjectInvalidator interface {
	Invalidate(sub string)
	Purge()
}

// subscription is one subscription to the invalidation channel, with what
// must be closed with it.
type subscription struct {
	*redis.PubSub
	owner interface{ Close() error } // a client made for it, or nil
}

func (s *subscription) close() {
	_ = s.PubSub.Close()
	if s.owner != nil {
		_ = s.owner.Close()
	}
}

// subscribeFunc opens a subscription to the channel on a live node and
// returns it once Redis has confirmed it. hint, when not empty, is the
// address of the master Sentinel just announced.
type subscribeFunc func(ctx context.Context, hint string) (*subscription, error)

// listener keeps a subscription to the invalidation channel and drops the
// cached records named on it ("user:<id>" or "app:<client_id>", see
// redisstore).
//
// The subscription is not left to go-redis's reconnection, which dials the
// same node again: in a Cluster it would use a stale slot map and keep
// dialling a dead master until the map is reloaded, and after a Sentinel
// switch it stays on the demoted master. On any error the listener
// subscribes again at once on a live node (see subscribeFunc), and on a
// Sentinel +switch-master on the new master. Messages may have been missed
// in between, so the whole cache is purged after every subscription: the
// next lookups go to Redis.
type listener struct {
	open  subscribeFunc
	cache invalidator
	// subjects, when set, is the OIDC sub → user id cache: "sub:<sub>"
	// messages drop one entry (redisstore publishes them when a user's sub
	// changes), and it is purged with cache.
	subjects  subjectInvalidator
	normalize func(string) (string, bool) // gives user ids the form the cache holds
	log       *slog.Logger
	logs      *logbudget.Budget

	mu      sync.Mutex
	current *subscription
	hint    string
	closed  bool
}

// run subscribes, listens and subscribes again until ctx is done or close.
func (l *listener) run(ctx context.Context) {
	retry := invalidationRetry
	wait := func() bool {
		t := time.NewTimer(retry)
		defer t.Stop()
		retry = min(2*retry, invalidationRetryMax)
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	first := true
	for ctx.Err() == nil {
		sub, err := l.open(ctx, l.takeHint())
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			l.log.Debug("subscribing to the invalidation channel failed; retrying", "error", err.Error(), "in", retry)
			if !wait() {
				return
			}
			continue
		}
		subscribed := time.Now()
		if !l.setCurrent(sub) {
			sub.close()
			return
		}
		if l.hasHint() {
			// Sentinel announced a switch while this subscription was
			// being made: it may be on the old master.
			l.setCurrent(nil)
			sub.close()
			continue
		}
		// Messages published while the listener had no subscription
		// were lost: entries cached before this one may be stale.
		if !first {
			l.cache.Purge()
			if l.subjects != nil {
				l.subjects.Purge()
			}
			l.log.Info("invalidation channel resubscribed; in-process cache purged")
		}
		first = false
		err = l.receive(ctx, sub)
		l.setCurrent(nil)
		sub.close()
		if ctx.Err() != nil {
			return
		}
		switch {
		case l.hasHint():
			// Sentinel moved the master (switched closed the
			// subscription): go there at once.
			l.log.Info("moving the invalidation subscription to the new master")
			continue
		default:
			l.log.Warn("invalidation subscription lost; subscribing again on a live node", "error", err.Error())
		}
		switch {
		case time.Since(subscribed) < invalidationStable:
			if !wait() {
				return
			}
		default:
			retry = invalidationRetry
		}
	}
}

// receive handles messages until the subscription fails.
func (l *listener) receive(ctx context.Context, sub *subscription) error {
	pinged := false
	for {
		msg, err := sub.ReceiveTimeout(ctx, invalidationHealth)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
				if pinged {
					return fmt.Errorf("no answer to a ping within %s: %w", invalidationHealth, err)
				}
				if err := sub.Ping(ctx); err != nil {
					return fmt.Errorf("ping: %w", err)
				}
				pinged = true
				continue
			}
			return err
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Message:
			l.handle(ctx, m)
		case *redis.Subscription:
			if m.Kind == "unsubscribe" {
				return errors.New("unsubscribed by the server")
			}
		}
	}
}

func (l *listener) handle(ctx context.Context, m *redis.Message) {
	if sub, ok := userstore.ParseSubChange(m.Payload); ok {
		if l.subjects != nil {
			l.subjects.Invalidate(sub)
		}
		return
	}
	kind, id, ok := userstore.ParseChange(m.Payload)
	if !ok {
		// Anyone who may publish can send these as fast as they like.
		if l.logs.Enabled(ctx, l.log, slog.LevelWarn) {
			l.log.LogAttrs(ctx, slog.LevelWarn, "ignoring a malformed invalidation message",
				slog.String("channel", m.Channel), slog.Int("bytes", len(m.Payload)))
		}
		return
	}
	l.cache.Invalidate(kind, id)
	if kind == userstore.User && l.normalize != nil {
		if canonical, ok := l.normalize(id); ok && canonical != id {
			l.cache.Invalidate(kind, canonical)
		}
	}
}

// switched is called when Sentinel announces a new master: the
// subscription moves there at once.
func (l *listener) switched(addr string) {
	l.mu.Lock()
	l.hint = addr
	cur := l.current
	l.mu.Unlock()
	if cur != nil {
		// Receive returns an error, and run subscribes again.
		_ = cur.PubSub.Close()
	}
}

func (l *listener) hasHint() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.hint != ""
}

func (l *listener) takeHint() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.hint
	l.hint = ""
	return h
}

// setCurrent records the subscription that close must close; false once
// closed.
func (l *listener) setCurrent(sub *subscription) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.current = sub
	return true
}

// close unblocks run (whose context must be done too).
func (l *listener) close() {
	l.mu.Lock()
	l.closed = true
	cur := l.current
	l.mu.Unlock()
	if cur != nil {
		_ = cur.PubSub.Close()
	}
}

// confirm waits for Redis to confirm a subscription made by Subscribe
// (which does not wait), within bound.
func confirm(ctx context.Context, ps *redis.PubSub, bound time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	for {
		msg, err := ps.ReceiveTimeout(ctx, bound)
		if err != nil {
			return err
		}
		if s, ok := msg.(*redis.Subscription); ok && s.Kind == "subscribe" {
			return nil
		}
	}
}

// subscriber returns how the listener subscribes to channel on client.
//
//   - Standalone: on the server.
//   - Sentinel: on the master Sentinel names, or on the one a +switch-master
//     just announced (hint), through a client of its own.
//   - Cluster: a classic PUBLISH reaches the subscribers of every node, so any
//     live node does. The slot map is reloaded first (synchronously), then
//     the nodes are tried in random order: the dead master is skipped even
//     before the cluster has promoted its replica.
func subscriber(client redis.UniversalClient, watch *redisstore.SentinelWatch, channel string, bound time.Duration) subscribeFunc {
	on := func(ctx context.Context, c interface {
		Subscribe(context.Context, ...string) *redis.PubSub
	}, owner interface{ Close() error }) (*subscription, error) {
		ps := c.Subscribe(ctx, channel)
		if err := confirm(ctx, ps, bound); err != nil {
			_ = ps.Close()
			if owner != nil {
				_ = owner.Close()
			}
			return nil, err
		}
		return &subscription{PubSub: ps, owner: owner}, nil
	}
	cluster, isCluster := client.(*redis.ClusterClient)
	switch {
	case isCluster:
		return func(ctx context.Context, _ string) (*subscription, error) {
			var mu sync.Mutex
			var nodes []*redis.Client
			lctx, cancel := context.WithTimeout(ctx, bound)
			// ForEachShard reloads the slot map before it visits the
			// nodes; only the list of nodes is wanted here.
			err := cluster.ForEachShard(lctx, func(_ context.Context, c *redis.Client) error {
				mu.Lock()
				nodes = append(nodes, c)
				mu.Unlock()
				return nil
			})
			cancel()
			if len(nodes) == 0 {
				return nil, fmt.Errorf("no Cluster node known: %w", err)
			}
			rand.Shuffle(len(nodes), func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
			var errs []error
			for _, n := range nodes {
				sub, err := on(ctx, n, nil)
				if err == nil {
					return sub, nil
				}
				errs = append(errs, fmt.Errorf("%s: %w", n.Options().Addr, err))
				if ctx.Err() != nil {
					break
				}
			}
			return nil, errors.Join(errs...)
		}
	case watch != nil:
		return func(ctx context.Context, hint string) (*subscription, error) {
			if hint != "" {
				nc := watch.NodeClient(hint)
				if sub, err := on(ctx, nc, nc); err == nil {
					return sub, nil
				}
			}
			return on(ctx, client, nil)
		}
	default:
		return func(ctx context.Context, _ string) (*subscription, error) { return on(ctx, client, nil) }
	}
}
