package userstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse-authz/gatehouse/internal/boundedcache"
)

// SubChangePrefix starts the change notice of a subject: "sub:<sub>", sent
// on the same feeds as ParseChange's notices when a user's sub is added,
// changed or removed, so that subject caches drop it (SubjectCache.Invalidate).
const SubChangePrefix = "sub:"

// ParseSubChange reads a subject's change notice, "sub:<sub>" with a
// non-empty sub, and returns the sub.
func ParseSubChange(s string) (string, bool) {
	sub, ok := strings.CutPrefix(s, SubChangePrefix)
	if !ok || sub == "" {
		return "", false
	}
	return sub, true
}

// Defaults of SubjectCacheOptions.
const (
	// DefaultSubjectTTL is long: a user's sub never changes in Meet, and
	// a change made by a writer of gatehouse's own directory is published.
	DefaultSubjectTTL         = 5 * time.Minute
	DefaultSubjectNegativeTTL = 5 * time.Second
)

// SubjectCacheOptions configure a SubjectCache. Zero values select the
// defaults.
type SubjectCacheOptions struct {
	// TTL is how long a found subject is served from the cache (default
	// DefaultSubjectTTL; negative: not cached).
	TTL time.Duration
	// NegativeTTL is how long an unknown subject is (default
	// DefaultSubjectNegativeTTL; negative: not cached), short so that a
	// user created since is found soon even without invalidation.
	NegativeTTL time.Duration
	// Size bounds the cached subjects (default DefaultCacheSize).
	Size int
	// LookupTimeout bounds one origin lookup, which runs detached from
	// its callers since it is shared (default DefaultLookupTimeout).
	LookupTimeout time.Duration
	// Now is the clock (default time.Now); tests inject a fake one.
	Now func() time.Time
}

// subjectEntry is one cached answer: id is "" for an unknown subject.
type subjectEntry struct {
	id    string
	found bool
}

// SubjectCache is Subjects answered from a bounded in-process cache in
// front of another Subjects (the origin). Concurrent misses on one subject
// share one origin lookup, which each caller waits for only as long as its
// own context allows. Errors are never cached.
type SubjectCache struct {
	origin  Subjects
	cache   *boundedcache.Cache[string, subjectEntry]
	flights flights
	ttl     time.Duration
	negTTL  time.Duration
	now     func() time.Time
}

var _ Subjects = (*SubjectCache)(nil)

// NewSubjectCache returns a SubjectCache in front of origin.
func NewSubjectCache(origin Subjects, opts SubjectCacheOptions) *SubjectCache {
	c := &SubjectCache{
		origin: origin,
		ttl:    opts.TTL,
		negTTL: opts.NegativeTTL,
		now:    opts.Now,
	}
	if c.ttl == 0 {
		c.ttl = DefaultSubjectTTL
	}
	if c.negTTL == 0 {
		c.negTTL = DefaultSubjectNegativeTTL
	}
	c.flights.timeout = opts.LookupTimeout
	if c.flights.timeout <= 0 {
		c.flights.timeout = DefaultLookupTimeout
	}
	if c.now == nil {
		c.now = time.Now
	}
	size := opts.Size
	if size <= 0 {
		size = DefaultCacheSize
	}
	c.cache = boundedcache.New[string, subjectEntry](size)
	return c
}

// UserBySub implements Subjects. A cached answer is returned at once;
// otherwise the origin is asked, once per subject however many callers
// wait. A caller whose ctx is done gets an error wrapping ErrUnavailable
// and ctx.Err(); an origin error is returned wrapped in ErrUnavailable.
func (c *SubjectCache) UserBySub(ctx context.Context, sub string) (string, bool, error) {
	if sub == "" {
		return "", false, nil
	}
	if e, ok := c.cache.Get(sub, c.now()); ok {
		return e.id, e.found, nil
	}
	if err := ctx.Err(); err != nil {
		return "", false, fmt.Errorf("userstore: subject cache: %w: %w", ErrUnavailable, err)
	}
	e, _, err := load(ctx, &c.flights, sub, func(ctx context.Context) (subjectEntry, error) {
		id, found, err := c.origin.UserBySub(ctx, sub)
		if !found {
			id = ""
		}
		return subjectEntry{id: id, found: found}, err
	}, func(e subjectEntry) { c.store(sub, e) }, func() { c.cache.Delete(sub) })
	if err != nil {
		// Never a sub in the error: it comes from a token's
		// introspection answer.
		return "", false, fmt.Errorf("userstore: subject cache: %w: %w", ErrUnavailable, err)
	}
	return e.id, e.found, nil
}

func (c *SubjectCache) store(sub string, e subjectEntry) {
	ttl := c.negTTL
	if e.found {
		ttl = c.ttl
	}
	if ttl <= 0 {
		return
	}
	now := c.now()
	c.cache.Set(sub, e, now, now.Add(ttl))
}

// Invalidate drops the cached answer for sub; a lookup in flight for it is
// not cached, and later callers do not join it.
func (c *SubjectCache) Invalidate(sub string) {
	c.flights.invalidated(sub)
	c.cache.Delete(sub)
}

// Purge drops every cached answer (after the invalidation feed was lost).
func (c *SubjectCache) Purge() {
	c.flights.invalidated("")
	c.cache.Purge()
}

// Len returns the number of cached subjects, expired ones included.
func (c *SubjectCache) Len() int { return c.cache.Len() }
