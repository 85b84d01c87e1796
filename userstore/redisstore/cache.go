package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-authz/gatehouse/userstore"
)

// OriginField is the hash field that marks a record written by gatehouse
// from a directory origin's answer: "found" (the origin has the record;
// "active" says whether it is active) or "absent" (the origin does not know
// it: a cached NotFound, written with "active" "0").
//
// A lookup without an origin reads "active" only, so such an entry means
// what it always meant: "1" Active, "0" Inactive (an absent record is
// refused either way).
const OriginField = "origin"

// Values of OriginField.
const (
	originFound  = "found"
	originAbsent = "absent"
)

// OriginCache is the Redis layer in front of a directory origin: it reads,
// writes and deletes the cached answers of the origin under the records'
// usual keys (see the package's schema), each written with a TTL. It
// implements userstore.SharedCache.
//
// Only entries marked with OriginField are answers: a record without the
// mark (written by `gatehouse users put`, or by a sync job from the days
// when Redis was the directory) is a miss, so that the origin is asked and
// its answer replaces it. Such a record must never shadow the directory of
// record, which may have deactivated the user since.
type OriginCache struct {
	s *Store
}

var _ userstore.SharedCache = (*OriginCache)(nil)

// OriginCache returns the Redis cache of a directory origin, on s's keys.
func (s *Store) OriginCache() *OriginCache { return &OriginCache{s: s} }

// Get implements userstore.SharedCache with one HMGET.
func (c *OriginCache) Get(ctx context.Context, kind userstore.Kind, id string) (userstore.Status, bool, error) {
	key, err := c.s.Key(kind, id)
	if err != nil {
		return userstore.NotFound, false, err
	}
	if id == "" {
		return userstore.NotFound, false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.s.timeout)
	defer cancel()
	vals, err := c.s.client.HMGet(ctx, key, "active", OriginField).Result()
	switch {
	case redis.HasErrorPrefix(err, "WRONGTYPE"):
		return userstore.NotFound, false, invalidRecord(kind, "key holds another type than a hash")
	case err != nil:
		c.s.failed(err)
		return userstore.NotFound, false, unavailable(ctx, "cache get", kind, err)
	case len(vals) != 2:
		return userstore.NotFound, false, invalidRecord(kind, "unexpected HMGET answer")
	}
	active, _ := vals[0].(string)
	origin, _ := vals[1].(string)
	switch {
	case vals[1] == nil:
		// Absent, or a record not written from the origin.
		return userstore.NotFound, false, nil
	case origin == originAbsent:
		return userstore.NotFound, true, nil
	case origin == originFound && active == "1":
		return userstore.Active, true, nil
	case origin == originFound && active == "0":
		return userstore.Inactive, true, nil
	default:
		return userstore.NotFound, false, invalidRecord(kind, "cached entry with an unknown \""+OriginField+"\" or \"active\" value")
	}
}

// cacheSetScript replaces a record by a cached answer with a TTL, leaving
// alone a key of another type (it returns 0 then). The whole hash is
// replaced: fields of an older record (an email) do not outlive it.
var cacheSetScript = redis.NewScript(`
local t = redis.call('TYPE', KEYS[1])['ok']
if t ~= 'hash' and t ~= 'none' then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'active', ARGV[1], 'origin', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1`)

// Set implements userstore.SharedCache: one script writes the answer and its
// TTL atomically, so that no reader sees an entry without its TTL.
func (c *OriginCache) Set(ctx context.Context, kind userstore.Kind, id string, st userstore.Status, ttl time.Duration) error {
	key, err := c.s.Key(kind, id)
	if err != nil {
		return err
	}
	if id == "" {
		return fmt.Errorf("redisstore: cache %s: empty id", kind)
	}
	ms := ttl.Milliseconds()
	if ms <= 0 {
		return fmt.Errorf("redisstore: cache %s: TTL %s is not positive", kind, ttl)
	}
	active, origin := "0", originFound
	switch st {
	case userstore.Active:
		active = "1"
	case userstore.NotFound:
		origin = originAbsent
	}
	ctx, cancel := context.WithTimeout(ctx, c.s.timeout)
	defer cancel()
	n, err := cacheSetScript.Run(ctx, c.s.client, []string{key}, active, origin, ms).Int()
	switch {
	case err != nil:
		c.s.failed(err)
		return unavailable(ctx, "cache set", kind, err)
	case n == 0:
		return fmt.Errorf("redisstore: cache %s: %w", kind, ErrWrongType)
	}
	return nil
}

// Delete implements userstore.SharedCache with one DEL.
func (c *OriginCache) Delete(ctx context.Context, kind userstore.Kind, id string) error {
	key, err := c.s.Key(kind, id)
	if err != nil || id == "" {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.s.timeout)
	defer cancel()
	if err := c.s.client.Del(ctx, key).Err(); err != nil && !errors.Is(err, redis.Nil) {
		c.s.failed(err)
		return unavailable(ctx, "cache delete", kind, err)
	}
	return nil
}
