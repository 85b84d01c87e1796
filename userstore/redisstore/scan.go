package redisstore

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-authz/gatehouse/userstore"
)

// scanCount is the COUNT hint of each SCAN and the size of each batch of
// HGETALLs.
const scanCount = 1000

// globEscape escapes the characters SCAN's MATCH pattern treats specially,
// so that a prefix is matched literally.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Scan calls fn with every record of kind, in no particular order, reading
// them with SCAN (on every master of a Cluster) and pipelined HGETALLs, so
// that Redis is never blocked by a large directory. A record deleted while
// the scan runs may be skipped; keys of another type are skipped. fn is not
// called concurrently. Each round trip is bounded by Timeout; the whole scan
// by ctx only.
func (s *Store) Scan(ctx context.Context, kind userstore.Kind, fn func(userstore.Record) error) error {
	prefix, err := s.Key(kind, "")
	if err != nil {
		return err
	}
	var mu sync.Mutex // serialises fn across Cluster masters
	scanNode := func(ctx context.Context, c redis.Cmdable) error {
		var cursor uint64
		for {
			rctx, cancel := context.WithTimeout(ctx, s.timeout)
			keys, next, err := c.Scan(rctx, cursor, globEscape(prefix)+"*", scanCount).Result()
			cancel()
			if err != nil {
				return unavailable(rctx, "scan", kind, err)
			}
			if len(keys) > 0 {
				if err := s.emit(ctx, c, kind, prefix, keys, &mu, fn); err != nil {
					return err
				}
			}
			if next == 0 {
				return nil
			}
			cursor = next
		}
	}
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			return scanNode(ctx, c)
		})
	}
	return scanNode(ctx, s.client)
}

func (s *Store) emit(ctx context.Context, c redis.Cmdable, kind userstore.Kind, prefix string, keys []string, mu *sync.Mutex, fn func(userstore.Record) error) error {
	rctx, cancel := context.WithTimeout(ctx, s.batchTimeout(len(keys)))
	defer cancel()
	cmds := make([]*redis.MapStringStringCmd, len(keys))
	_, err := c.Pipelined(rctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.HGetAll(rctx, k)
		}
		return nil
	})
	if err != nil && !isWrongType(err) {
		return unavailable(rctx, "scan", kind, err)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, cmd := range cmds {
		m, err := cmd.Result()
		if err != nil || len(m) == 0 {
			continue // deleted since SCAN, or not a hash
		}
		if _, ok := m["active"]; !ok {
			continue // Lookup reads it as NotFound too
		}
		r := userstore.Record{ID: strings.TrimPrefix(keys[i], prefix), Active: m["active"] == "1", Email: m["email"]}
		if err := fn(r); err != nil {
			return fmt.Errorf("redisstore: scan %s: %w", kind, err)
		}
	}
	return nil
}

func isWrongType(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "WRONGTYPE")
}
