package server

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-authz/gatehouse/userstore"
)

// invalidationRetry is the pause after a failed receive on the invalidation
// channel (Redis down), so that the listener does not spin.
const invalidationRetry = time.Second

// invalidator is the part of userstore.Cache the listener needs.
type invalidator interface {
	Invalidate(kind userstore.Kind, id string)
	Purge()
}

// listenInvalidations drops cached records named on the invalidation channel
// ("user:<id>" or "app:<client_id>", see redisstore) until ctx is done or ps
// is closed. After the subscription is re-established (Redis restarted, the
// connection dropped), messages may have been missed, so the whole cache is
// purged: the next lookups go to Redis. normalize, when set, gives user ids
// the form the cache holds them in (a writer may publish an upper-case UUID).
func listenInvalidations(ctx context.Context, ps *redis.PubSub, cache invalidator, normalize func(string) (string, bool), log *slog.Logger) {
	subscribed := false
	for {
		msg, err := ps.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// go-redis reconnects and resubscribes on the next Receive.
			t := time.NewTimer(invalidationRetry)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind != "subscribe" {
				continue
			}
			if subscribed {
				cache.Purge()
				log.Info("invalidation channel resubscribed; in-process cache purged", "channel", m.Channel)
			}
			subscribed = true
		case *redis.Message:
			kind, id, ok := parseInvalidation(m.Payload)
			if !ok {
				log.Warn("ignoring a malformed invalidation message", "channel", m.Channel, "bytes", len(m.Payload))
				continue
			}
			cache.Invalidate(kind, id)
			if kind == userstore.User && normalize != nil {
				if canonical, ok := normalize(id); ok && canonical != id {
					cache.Invalidate(kind, canonical)
				}
			}
		}
	}
}

// parseInvalidation parses "user:<id>" or "app:<client_id>".
func parseInvalidation(payload string) (userstore.Kind, string, bool) {
	kind, id, ok := strings.Cut(payload, ":")
	if !ok || id == "" {
		return 0, "", false
	}
	switch kind {
	case userstore.User.String():
		return userstore.User, id, true
	case userstore.App.String():
		return userstore.App, id, true
	}
	return 0, "", false
}
