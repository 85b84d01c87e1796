package redisstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-authz/gatehouse/userstore"
)

// IntrospectionCache keeps the verdicts of OIDC token introspection in
// Redis, shared by every replica, under <prefix>introspection:<hex> where
// <hex> is the lower-case hex of a key the caller derives (the SHA-256 of
// the token: the token itself never reaches Redis). Values are opaque
// bytes, each with its own TTL. One key per operation, so any deployment
// (a Cluster included) serves it. Its methods match the shared cache the
// introspection code expects, without this package depending on it.
type IntrospectionCache struct {
	s *Store
}

// IntrospectionCache returns the shared verdict cache on s's client,
// prefix and timeout.
func (s *Store) IntrospectionCache() *IntrospectionCache { return &IntrospectionCache{s: s} }

// key is <prefix>introspection:<64 lower-case hex digits>.
func (c *IntrospectionCache) key(k [sha256.Size]byte) string {
	var buf [2 * sha256.Size]byte
	hex.Encode(buf[:], k[:])
	return c.s.introPrefix + string(buf[:])
}

// Get returns the value stored under key. A missing key, and a key of
// another type than a string (written by someone else: not a verdict), is
// found=false without an error. Errors wrap userstore.ErrUnavailable.
func (c *IntrospectionCache) Get(ctx context.Context, key [sha256.Size]byte) ([]byte, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, c.s.timeout)
	defer cancel()
	v, err := c.s.client.Get(ctx, c.key(key)).Bytes()
	switch {
	case err == redis.Nil, isWrongType(err):
		return nil, false, nil
	case err != nil:
		c.s.failed(err)
		return nil, false, introspectionUnavailable(ctx, "get", err)
	}
	return v, true, nil
}

// Set stores value under key for ttl (SET PX: value and expiry in one
// command, so no reader sees a verdict without its expiry). A ttl that is
// not positive stores nothing: such a verdict has already expired. Errors
// wrap userstore.ErrUnavailable.
func (c *IntrospectionCache) Set(ctx context.Context, key [sha256.Size]byte, value []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return nil
	}
	// PX takes whole milliseconds: truncated (a verdict is never kept
	// longer than asked), but at least one, since 0 is refused.
	ms := max(ttl.Milliseconds(), 1)
	ctx, cancel := context.WithTimeout(ctx, c.s.timeout)
	defer cancel()
	if err := c.s.client.Do(ctx, "SET", c.key(key), value, "PX", ms).Err(); err != nil {
		c.s.failed(err)
		return introspectionUnavailable(ctx, "set", err)
	}
	return nil
}

func introspectionUnavailable(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		err = fmt.Errorf("%w (%w)", err, cerr)
	}
	return fmt.Errorf("redisstore: introspection cache %s: %w: %w", op, userstore.ErrUnavailable, err)
}
