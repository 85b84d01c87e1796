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

// RawRecord is one key of a kind's prefix as ScanRaw found it, before
// any interpretation: export decides what lookups make of it.
type RawRecord struct {
	// Key is the whole Redis key; ID is Key without the kind's prefix.
	Key, ID string
	// Type is "hash", or the type the key holds instead.
	Type string
	// Fields are the hash's fields (nil for another type).
	Fields map[string]string
	// SubIndexed is true for a user whose "sub" field's index entry names
	// it: the user UserBySub finds by that sub (provided the sub and the
	// id pass their checks).
	SubIndexed bool
}

// Scan calls fn with every record of kind that has an "active" field, in
// no particular order, as ScanRaw finds them; keys of another type and
// hashes without "active" are skipped. Active is true only for "1".
func (s *Store) Scan(ctx context.Context, kind userstore.Kind, fn func(userstore.Record) error) error {
	return s.ScanRaw(ctx, kind, func(r RawRecord) error {
		active, ok := r.Fields["active"]
		if r.Type != "hash" || !ok {
			return nil
		}
		rec := userstore.Record{ID: r.ID, Active: active == "1", Email: r.Fields["email"]}
		if kind == userstore.User {
			rec.Sub = r.Fields["sub"]
		}
		return fn(rec)
	})
}

// ScanRaw calls fn with every key of kind's prefix, in no particular order,
// reading them with SCAN (on every master of a Cluster) and pipelined
// HGETALLs (and TYPE for the keys that are not hashes), so that Redis is
// never blocked by a large directory. A key deleted while the scan runs may
// be skipped. fn is not called concurrently. Each round trip is bounded by
// Timeout; the whole scan by ctx only.
func (s *Store) ScanRaw(ctx context.Context, kind userstore.Kind, fn func(RawRecord) error) error {
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

func (s *Store) emit(ctx context.Context, c redis.Cmdable, kind userstore.Kind, prefix string, keys []string, mu *sync.Mutex, fn func(RawRecord) error) error {
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
	recs := make([]RawRecord, 0, len(keys))
	var others []int // positions in recs of keys of another type
	for i, cmd := range cmds {
		m, err := cmd.Result()
		switch {
		case isWrongType(err):
			others = append(others, len(recs))
			recs = append(recs, RawRecord{Key: keys[i], ID: strings.TrimPrefix(keys[i], prefix)})
		case err != nil:
			return unavailable(rctx, "scan", kind, err)
		case len(m) == 0:
			// Deleted since SCAN.
		default:
			recs = append(recs, RawRecord{Key: keys[i], ID: strings.TrimPrefix(keys[i], prefix), Type: "hash", Fields: m})
		}
	}
	if len(others) > 0 {
		types := make([]*redis.StatusCmd, len(others))
		_, err := c.Pipelined(rctx, func(p redis.Pipeliner) error {
			for j, i := range others {
				types[j] = p.Type(rctx, recs[i].Key)
			}
			return nil
		})
		if err != nil {
			return unavailable(rctx, "scan", kind, err)
		}
		for j, i := range others {
			recs[i].Type = types[j].Val()
		}
	}
	if kind == userstore.User {
		ids, subs := make([]string, len(recs)), make([]string, len(recs))
		for i, r := range recs {
			ids[i], subs[i] = r.ID, r.Fields["sub"]
		}
		indexed, err := s.subIndexedBy(rctx, ids, subs)
		if err != nil {
			return unavailable(rctx, "scan", kind, err)
		}
		for i := range recs {
			recs[i].SubIndexed = indexed[i]
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, r := range recs {
		if r.Type == "none" {
			continue // deleted since HGETALL
		}
		if err := fn(r); err != nil {
			return fmt.Errorf("redisstore: scan %s: %w", kind, err)
		}
	}
	return nil
}

func isWrongType(err error) bool {
	return redis.HasErrorPrefix(err, "WRONGTYPE")
}
