package userstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/gatehouse-authz/gatehouse/internal/boundedcache"
	"github.com/gatehouse-authz/gatehouse/internal/logbudget"
)

// Cache defaults.
const (
	DefaultCacheSize     = 100_000
	DefaultTTL           = 30 * time.Second
	DefaultNegativeTTL   = 5 * time.Second
	DefaultLookupTimeout = 250 * time.Millisecond
)

// CacheOptions configure a Cache. Zero values select the defaults.
type CacheOptions struct {
	// Size bounds the number of cached records of each kind (default
	// DefaultCacheSize): users and apps have separate caches, so at most
	// 2*Size entries are held.
	Size int
	// TTL is how long an Active answer is served from the cache (default
	// DefaultTTL). A negative value disables caching of Active answers.
	TTL time.Duration
	// NegativeTTL is how long NotFound and Inactive answers are served
	// (default DefaultNegativeTTL). It is shorter than TTL so that a newly
	// created or re-enabled account works soon even without invalidation.
	// A negative value disables caching of these answers.
	NegativeTTL time.Duration
	// StaleIfError, when positive, lets a lookup whose origin fails answer
	// with a cached entry, even an expired one, stored less than
	// StaleIfError ago. Only errors wrapping ErrUnavailable (an outage) are
	// covered. Zero (the default) never serves stale entries.
	StaleIfError time.Duration
	// LookupTimeout bounds one origin lookup (default DefaultLookupTimeout).
	// The origin call is shared by every caller waiting on the same key, so
	// it runs detached from any one caller's context and this timeout is
	// what stops it.
	LookupTimeout time.Duration
	// Now returns the current time; tests inject a fake clock. Default
	// time.Now.
	Now func() time.Time
	// Logger receives warnings when stale entries are served or a record
	// is invalid. Default slog.Default().
	Logger *slog.Logger
	// LogBudget caps those warnings, which come once per request: during
	// an outage every request served from a stale entry would otherwise
	// write a line. Default: a budget of logbudget.DefaultPerSecond lines.
	LogBudget *logbudget.Budget
	// OnLookup, if set, is called once per Lookup with layer "cache" and
	// an outcome: "hit", "miss" (answered by the origin), "stale" (origin
	// failed, stale entry served), "invalid" (the record is malformed,
	// see ErrInvalidRecord; answered Inactive) or "error". It runs on the
	// request path and must be fast and safe for concurrent use.
	OnLookup func(layer, outcome string)
}

// Cache is a Directory that answers from a bounded in-process cache in front
// of another Directory (the origin). Concurrent misses on one key share a
// single origin lookup. Errors are never cached.
type Cache struct {
	origin Directory
	// One cache per kind, keyed by the bare id: a string key hashes about
	// three times faster than a {kind, id} struct, which matters on the
	// hit path, and needs no allocation either.
	users    *boundedcache.Cache[string, Status]
	apps     *boundedcache.Cache[string, Status]
	flights  flights
	ttl      time.Duration
	negTTL   time.Duration
	stale    time.Duration
	now      func() time.Time
	log      *slog.Logger
	logs     *logbudget.Budget
	onLookup func(layer, outcome string)
}

// cacheKey names a record on the miss path.
type cacheKey struct {
	kind Kind
	id   string
}

// NewCache returns a Cache in front of origin.
func NewCache(origin Directory, opts CacheOptions) *Cache {
	c := &Cache{
		origin:   origin,
		ttl:      opts.TTL,
		negTTL:   opts.NegativeTTL,
		stale:    opts.StaleIfError,
		now:      opts.Now,
		log:      opts.Logger,
		logs:     opts.LogBudget,
		onLookup: opts.OnLookup,
	}
	size := opts.Size
	if size <= 0 {
		size = DefaultCacheSize
	}
	if c.ttl == 0 {
		c.ttl = DefaultTTL
	}
	if c.negTTL == 0 {
		c.negTTL = DefaultNegativeTTL
	}
	c.flights.timeout = opts.LookupTimeout
	if c.flights.timeout <= 0 {
		c.flights.timeout = DefaultLookupTimeout
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.logs == nil {
		c.logs = logbudget.New(0)
	}
	c.users = boundedcache.New[string, Status](size)
	c.apps = boundedcache.New[string, Status](size)
	return c
}

// table returns the cache for kind, or nil for an unknown kind.
func (c *Cache) table(kind Kind) *boundedcache.Cache[string, Status] {
	switch kind {
	case User:
		return c.users
	case App:
		return c.apps
	default:
		return nil
	}
}

func (c *Cache) observe(outcome string) {
	if c.onLookup != nil {
		c.onLookup("cache", outcome)
	}
}

// Lookup implements Directory. A cached, unexpired answer is returned at once
// (even if ctx is done). Otherwise the origin is asked, once per key however
// many callers wait; each caller gives up as soon as its own ctx is done, with
// an error wrapping both ErrUnavailable and ctx.Err(). An origin error is
// returned wrapped in ErrUnavailable, unless StaleIfError allows a recent
// cached answer to be served instead. An invalid record (ErrInvalidRecord)
// is answered Inactive, without an error: see invalid.
func (c *Cache) Lookup(ctx context.Context, kind Kind, id string) (Status, error) {
	t := c.table(kind)
	if t == nil {
		// A programming error, not an outage: not wrapped in ErrUnavailable.
		c.observe("error")
		return NotFound, fmt.Errorf("userstore: cache: unknown kind %d", kind)
	}
	if st, ok := t.Get(id, c.now()); ok {
		c.observe("hit")
		return st, nil
	}
	return c.miss(ctx, t, cacheKey{kind, id})
}

func (c *Cache) miss(ctx context.Context, t *boundedcache.Cache[string, Status], k cacheKey) (Status, error) {
	if err := ctx.Err(); err != nil {
		c.observe("error")
		return NotFound, fmt.Errorf("userstore: cache: %s lookup: %w: %w", k.kind, ErrUnavailable, err)
	}
	st, done, err := load(ctx, &c.flights, flightKey(k), func(ctx context.Context) (Status, error) {
		// Never cached on error, an invalid record included: once
		// fixed, it must be read again.
		return c.origin.Lookup(ctx, k.kind, k.id)
	}, func(st Status) { c.store(t, k.id, st) }, func() { t.Delete(k.id) })
	switch {
	case done:
		c.observe("error")
		return NotFound, fmt.Errorf("userstore: cache: %s lookup: %w: %w", k.kind, ErrUnavailable, err)
	case err != nil:
		return c.originFailed(t, k, err)
	}
	c.observe("miss")
	return st, nil
}

func (c *Cache) store(t *boundedcache.Cache[string, Status], id string, st Status) {
	ttl := c.negTTL
	if st == Active {
		ttl = c.ttl
	}
	if ttl <= 0 {
		return
	}
	now := c.now()
	t.Set(id, st, now, now.Add(ttl))
}

func (c *Cache) originFailed(t *boundedcache.Cache[string, Status], k cacheKey, err error) (Status, error) {
	if errors.Is(err, ErrInvalidRecord) {
		return c.invalid(t, k, err)
	}
	// Only an outage may be covered by a stale entry: any other error
	// (a bug, an unexpected answer) is refused.
	if c.stale > 0 && errors.Is(err, ErrUnavailable) {
		if st, _, stored, ok := t.Peek(k.id); ok {
			if age := c.now().Sub(stored); age < c.stale {
				c.observe("stale")
				ctx := context.Background()
				if c.logs.Enabled(ctx, c.log, slog.LevelWarn) {
					c.log.LogAttrs(ctx, slog.LevelWarn, "directory origin failed; serving stale cached entry",
						slog.String("kind", k.kind.String()), slog.String("status", st.String()),
						slog.Duration("age", age), slog.String("error", err.Error()))
				}
				return st, nil
			}
		}
	}
	c.observe("error")
	if !errors.Is(err, ErrUnavailable) {
		err = fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return NotFound, fmt.Errorf("userstore: cache: %s lookup: %w", k.kind, err)
}

// invalid answers a record the origin could read but not understand (see
// ErrInvalidRecord): the caller is denied (Inactive), nothing is cached, and
// any older entry is dropped rather than served stale, since the origin is
// up and says the record is bad.
//
// Why a deny and not a 503: the origin answered, and a retry gets the same
// answer until an operator fixes the record; a 503 would tell the client to
// retry and count as an outage in the decision metrics. A deny is what
// a record that does not say "active" gets, and it concerns that record
// alone.
func (c *Cache) invalid(t *boundedcache.Cache[string, Status], k cacheKey, err error) (Status, error) {
	t.Delete(k.id)
	c.observe("invalid")
	ctx := context.Background()
	if c.logs.Enabled(ctx, c.log, slog.LevelWarn) {
		c.log.LogAttrs(ctx, slog.LevelWarn, "invalid directory record; denied until it is rewritten",
			slog.String("kind", k.kind.String()), slog.String("id", k.id), slog.String("error", err.Error()))
	}
	return Inactive, nil
}

// flightKey names a singleflight call; only built on a miss.
func flightKey(k cacheKey) string {
	return k.kind.String() + ":" + k.id
}

// Invalidate drops the cached entry for one record, so the next lookup asks
// the origin. A lookup already in flight for it will not be cached.
func (c *Cache) Invalidate(kind Kind, id string) {
	t := c.table(kind)
	if t == nil {
		return
	}
	c.flights.invalidated(flightKey(cacheKey{kind, id}))
	t.Delete(id)
}

// Purge drops every cached entry (for example after the invalidation channel
// was disconnected and messages may have been lost).
func (c *Cache) Purge() {
	c.flights.invalidated("")
	c.users.Purge()
	c.apps.Purge()
}

// Len returns the number of cached entries of both kinds, expired ones
// included.
func (c *Cache) Len() int { return c.users.Len() + c.apps.Len() }
