package userstore

import (
	"context"
	"time"
)

// OriginChainOptions configure an OriginChain.
type OriginChainOptions struct {
	// Cache configures the in-process layer. Its LookupTimeout must cover
	// a Redis read, the origin lookup and the write-back (it defaults to
	// ReadThrough.Timeout plus DefaultLookupTimeout when zero).
	Cache CacheOptions
	// ReadThrough configures the Redis layer and the origin's flights.
	ReadThrough ReadThroughOptions
	// NormalizeUserID, if set, gives user ids the form the decision core
	// looks them up in (canonical UUIDs): a change notification for a user
	// drops the entries of both the id as notified and its normal form.
	NormalizeUserID func(string) (string, bool)
}

// OriginChain is the directory when the directory of record is elsewhere
// (an origin: Meet's PostgreSQL, a gRPC directory service): an in-process
// Cache, in front of a ReadThrough reading the Redis cache that every
// replica shares (when there is one), in front of the origin.
//
// Bounds: a change notified by the origin (Changed) is applied at once to
// this replica's layers; without notifications, an answer is served at
// most the Redis TTL plus the in-process TTL after the origin changed it.
type OriginChain struct {
	*Cache
	rt        *ReadThrough
	normalize func(string) (string, bool)
}

// NewOriginChain returns the three layers in front of origin; shared may be
// nil (no Redis: in-process cache, then the origin).
func NewOriginChain(origin Directory, shared SharedCache, opts OriginChainOptions) *OriginChain {
	rt := NewReadThrough(origin, shared, opts.ReadThrough)
	copts := opts.Cache
	if copts.LookupTimeout <= 0 {
		copts.LookupTimeout = rt.timeout + DefaultLookupTimeout
	}
	return &OriginChain{Cache: NewCache(rt, copts), rt: rt, normalize: opts.NormalizeUserID}
}

// ReadThrough returns the Redis and origin layers.
func (c *OriginChain) ReadThrough() *ReadThrough { return c.rt }

// Changed applies a change notification of the origin for one record
// (pgorigin.Listen's and grpcorigin.Watch's onChange): answers in flight
// are not cached, the in-process entry is dropped, and the Redis entry is
// deleted. The in-process entry is dropped before Redis is asked, so that
// this replica refuses a revoked record at once even when Redis is slow; its
// Redis entry is not trusted until deleted. An error means the deletion
// failed and will be retried (see ReadThrough.Changed).
func (c *OriginChain) Changed(ctx context.Context, kind Kind, id string) error {
	ids := [2]string{id}
	if kind == User && c.normalize != nil {
		if canonical, ok := c.normalize(id); ok && canonical != id {
			ids[1] = canonical
		}
	}
	var stamps [2]uint64
	for i, id := range ids {
		if id != "" {
			stamps[i] = c.rt.begin(kind, id)
			c.Invalidate(kind, id)
		}
	}
	var first error
	for i, id := range ids {
		if id != "" {
			if err := c.rt.deleteShared(ctx, kind, id, stamps[i]); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}

// Reset applies a reset of the change notifications (pgorigin.Listen's and
// grpcorigin.Watch's onReset: a reconnection, or a reset event): the
// in-process cache is purged and answers in flight are not cached. Redis
// entries are left to expire by their TTL: changes missed while
// disconnected are served from Redis at most that long.
func (c *OriginChain) Reset() {
	c.rt.Reset()
	c.Purge()
}

// Run retries the Redis deletions that failed (see ReadThrough.Run) until
// ctx is done.
func (c *OriginChain) Run(ctx context.Context, interval time.Duration) {
	c.rt.Run(ctx, interval)
}
