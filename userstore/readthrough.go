package userstore

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/gatehouse-authz/gatehouse/internal/logbudget"
)

// ReadThrough defaults.
const (
	// DefaultSharedTTL is how long an Active answer of the origin stays
	// in the shared cache (GATEHOUSE_REDIS_CACHE_TTL).
	DefaultSharedTTL = 5 * time.Minute
	// DefaultSharedNegativeTTL is how long a NotFound or Inactive answer
	// stays there: shorter, so that a new or re-enabled account works soon
	// even without a change notification.
	DefaultSharedNegativeTTL = 30 * time.Second
	// DefaultOriginTimeout bounds one origin lookup and its write-back.
	DefaultOriginTimeout = 2 * time.Second
	// DefaultPendingRetry is how often deletions of the shared cache that
	// failed (Redis down when a change was notified) are tried again.
	DefaultPendingRetry = time.Second
	// maxPending bounds the failed deletions remembered; beyond it, the
	// shared cache is not trusted at all until its entries have expired.
	maxPending = 100_000
	// stripes is the number of change counters: a flight compares the
	// counter of its key's stripe before and after, so a change of another
	// key rarely (1 in stripes) suppresses its write-back.
	stripes = 256
)

// SharedCache is a cache of directory answers that every replica shares
// (Redis), between each replica's in-process Cache and the directory origin
// (the directory of record: Meet's database, or a service implementing
// gatehouse's directory protocol). redisstore.OriginCache implements it.
type SharedCache interface {
	// Get returns the cached answer of a record, found false when none is
	// cached. An error wrapping ErrInvalidRecord reports an entry it cannot
	// read (the origin is asked, and its answer overwrites the entry); any
	// other error wraps ErrUnavailable.
	Get(ctx context.Context, kind Kind, id string) (st Status, found bool, err error)
	// Set caches an answer for ttl.
	Set(ctx context.Context, kind Kind, id string, st Status, ttl time.Duration) error
	// Delete drops a cached answer; an absent one is not an error.
	Delete(ctx context.Context, kind Kind, id string) error
}

// ReadThroughOptions configure a ReadThrough. Zero values select the
// defaults.
type ReadThroughOptions struct {
	// TTL is how long an Active answer of the origin is kept in the shared
	// cache (default DefaultSharedTTL); NegativeTTL, a NotFound or
	// Inactive one (default DefaultSharedNegativeTTL). A negative value
	// does not write such answers.
	TTL, NegativeTTL time.Duration
	// Circuits, if set, are the shared cache's circuits (one per Redis
	// master): every read, write and delete goes through the circuit of
	// its record, so that a dead Redis costs a lookup nothing but a
	// failed check before it goes straight to the origin.
	Circuits *Circuits
	// Timeout bounds one origin lookup with its write-back (default
	// DefaultOriginTimeout). The lookup is shared by every caller waiting
	// on the same record and runs detached from any one caller's context.
	Timeout time.Duration
	// Now is the clock (default time.Now); Logger receives warnings
	// (default slog.Default()), capped by LogBudget (default: a budget of
	// logbudget.DefaultPerSecond lines).
	Now       func() time.Time
	Logger    *slog.Logger
	LogBudget *logbudget.Budget
	// OnLookup, if set, is called with layer "redis" and an outcome for
	// every read of the shared cache: "hit", "miss" (nothing cached, or an
	// entry not trusted because a change is pending), "invalid" (an entry
	// it cannot read) or "error"; and with "write_error" when a write-back
	// or a deletion fails. It must be fast and safe for concurrent use.
	OnLookup func(layer, outcome string)
}

// ReadThrough is a Directory that answers from a SharedCache (Redis) in
// front of a directory origin, and writes the origin's answers back into the
// shared cache with a TTL, so that one replica's lookup serves all of them.
// Put a Cache in front of it for the in-process layer (NewOriginChain builds
// the three layers).
//
//   - A cached answer is returned as is. A record with nothing cached, or
//     whose cached entry cannot be read, is asked of the origin, once per
//     record however many callers wait (one lookup in flight per record
//     per replica).
//   - The shared cache unreachable (its circuit open, a timeout): the
//     origin is asked directly; its answer is not written back.
//   - The origin failing: its error, wrapping ErrUnavailable, is returned
//     (never an allow); the Cache in front may serve a stale entry.
//   - An invalid record at the origin (ErrInvalidRecord): returned with
//     its error, and not written back.
//
// Changed applies a change notification: the record's shared entry is
// deleted (the in-process one too, through the OriginChain). An answer read
// from the origin before the change is not written back after it. A
// deletion that fails (Redis down) is remembered: the record's shared entry
// is not trusted until a retry (Run, RetryPending) has deleted it, or a
// newer answer has overwritten it, or it has expired.
type ReadThrough struct {
	origin   Directory
	shared   SharedCache
	circuits *Circuits
	ttl      time.Duration
	negTTL   time.Duration
	timeout  time.Duration
	now      func() time.Time
	log      *slog.Logger
	logs     *logbudget.Budget
	onLookup func(layer, outcome string)

	group singleflight.Group
	seed  maphash.Seed
	// changes counts the change notifications per stripe of records, and
	// epoch the resets: a flight writes back only if neither moved while
	// it was in flight, since its answer may predate the change.
	changes [stripes]atomic.Uint64
	epoch   atomic.Uint64

	npending atomic.Int64 // len(pending), read without the lock on hits
	bypass   atomic.Bool  // the shared cache is not trusted until bypassUntil
	mu       sync.Mutex
	pending  map[string]pendingDelete
	until    time.Time
}

// pendingDelete is a deletion of the shared cache that has not succeeded.
type pendingDelete struct {
	kind Kind
	id   string
	// change is the stripe's counter after the change: a write-back by a
	// flight that started at or after it holds a newer answer.
	change uint64
	at     time.Time
}

// NewReadThrough returns a ReadThrough asking origin behind shared. A nil
// shared cache makes it the origin with one lookup in flight per record.
func NewReadThrough(origin Directory, shared SharedCache, opts ReadThroughOptions) *ReadThrough {
	r := &ReadThrough{
		origin:   origin,
		shared:   shared,
		circuits: opts.Circuits,
		ttl:      opts.TTL,
		negTTL:   opts.NegativeTTL,
		timeout:  opts.Timeout,
		now:      opts.Now,
		log:      opts.Logger,
		logs:     opts.LogBudget,
		onLookup: opts.OnLookup,
		seed:     maphash.MakeSeed(),
		pending:  make(map[string]pendingDelete),
	}
	if r.ttl == 0 {
		r.ttl = DefaultSharedTTL
	}
	if r.negTTL == 0 {
		r.negTTL = DefaultSharedNegativeTTL
	}
	if r.timeout <= 0 {
		r.timeout = DefaultOriginTimeout
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.logs == nil {
		r.logs = logbudget.New(0)
	}
	return r
}

func (r *ReadThrough) observe(outcome string) {
	if r.onLookup != nil {
		r.onLookup("redis", outcome)
	}
}

// warn logs within the budget: these can come once per request.
func (r *ReadThrough) warn(msg string, attrs ...slog.Attr) {
	ctx := context.Background()
	if r.logs.Enabled(ctx, r.log, slog.LevelWarn) {
		r.log.LogAttrs(ctx, slog.LevelWarn, msg, attrs...)
	}
}

// sharedDo runs op on the shared cache through the record's circuit.
func (r *ReadThrough) sharedDo(ctx context.Context, kind Kind, id string, op func(context.Context) error) error {
	if r.circuits == nil {
		return op(ctx)
	}
	return r.circuits.Do(ctx, kind, id, op)
}

// Lookup implements Directory.
func (r *ReadThrough) Lookup(ctx context.Context, kind Kind, id string) (Status, error) {
	if kind != User && kind != App {
		return NotFound, fmt.Errorf("userstore: read-through: unknown kind %d", kind)
	}
	if r.shared != nil {
		if st, ok := r.fromShared(ctx, kind, id); ok {
			return st, nil
		}
	}
	return r.fromOrigin(ctx, kind, id)
}

// fromShared reads the shared cache; ok reports an answer to return.
func (r *ReadThrough) fromShared(ctx context.Context, kind Kind, id string) (Status, bool) {
	var (
		st    Status
		found bool
	)
	err := r.sharedDo(ctx, kind, id, func(ctx context.Context) error {
		var err error
		st, found, err = r.shared.Get(ctx, kind, id)
		return err
	})
	switch {
	case errors.Is(err, ErrInvalidRecord):
		r.observe("invalid")
		r.warn("unreadable entry in the Redis cache; asking the directory origin, whose answer replaces it",
			slog.String("kind", kind.String()), slog.String("error", err.Error()))
		return NotFound, false
	case err != nil:
		// Redis down or its circuit open: straight to the origin. The
		// circuit logs its state changes; this is once per request.
		r.observe("error")
		return NotFound, false
	case !found || r.distrusted(kind, id):
		r.observe("miss")
		return NotFound, false
	}
	r.observe("hit")
	return st, true
}

// fromOrigin asks the origin, once per record however many callers wait,
// and writes its answer back.
func (r *ReadThrough) fromOrigin(ctx context.Context, kind Kind, id string) (Status, error) {
	if err := ctx.Err(); err != nil {
		return NotFound, fmt.Errorf("userstore: origin %s lookup: %w: %w", kind, ErrUnavailable, err)
	}
	stripe := r.stripe(kind, id)
	detached := context.WithoutCancel(ctx)
	ch := r.group.DoChan(flightKey(cacheKey{kind, id}), func() (any, error) {
		change, epoch := stripe.Load(), r.epoch.Load()
		octx, cancel := context.WithTimeout(detached, r.timeout)
		defer cancel()
		st, err := r.origin.Lookup(octx, kind, id)
		if err != nil {
			// Whatever status came with the error, it is never an
			// allow: Inactive for a bad record (see ErrInvalidRecord),
			// NotFound otherwise.
			if errors.Is(err, ErrInvalidRecord) {
				return Inactive, err
			}
			return NotFound, err
		}
		r.writeBack(octx, kind, id, st, stripe, change, epoch)
		return st, nil
	})
	select {
	case res := <-ch:
		return res.Val.(Status), res.Err
	case <-ctx.Done():
		return NotFound, fmt.Errorf("userstore: origin %s lookup: %w: %w", kind, ErrUnavailable, ctx.Err())
	}
}

// writeBack stores the origin's answer in the shared cache, unless a change
// of the record (or a reset) was notified since the origin was asked.
func (r *ReadThrough) writeBack(ctx context.Context, kind Kind, id string, st Status, stripe *atomic.Uint64, change, epoch uint64) {
	if r.shared == nil {
		return
	}
	ttl := r.negTTL
	if st == Active {
		ttl = r.ttl
	}
	moved := func() bool { return stripe.Load() != change || r.epoch.Load() != epoch }
	if ttl <= 0 || moved() {
		return
	}
	err := r.sharedDo(ctx, kind, id, func(ctx context.Context) error {
		return r.shared.Set(ctx, kind, id, st, ttl)
	})
	if err != nil {
		r.observe("write_error")
		r.warn("could not write the directory origin's answer into the Redis cache; the next lookup asks the origin again",
			slog.String("kind", kind.String()), slog.String("error", err.Error()))
		return
	}
	if moved() {
		// A change landed while writing: its deletion may have reached
		// Redis before this write did. Delete again, or remember to.
		_ = r.deleteShared(ctx, kind, id, r.markPending(kind, id, stripe.Load()))
		return
	}
	r.overwritten(kind, id, change)
}

// stripe returns the change counter of a record's stripe.
func (r *ReadThrough) stripe(kind Kind, id string) *atomic.Uint64 {
	h := maphash.String(r.seed, id) ^ uint64(kind)
	return &r.changes[h%stripes]
}

// Changed applies a change notification for one record: answers read from
// the origin before it are not written back, the record's shared entry is
// not trusted from now on, and it is deleted. An error means the deletion
// failed: it is retried by Run and RetryPending, and the entry stays
// untrusted until then (or until it has expired).
func (r *ReadThrough) Changed(ctx context.Context, kind Kind, id string) error {
	return r.deleteShared(ctx, kind, id, r.begin(kind, id))
}

// begin is the part of Changed that does not wait for Redis: the in-process
// cache is invalidated after it and before the deletion, so that a
// revocation does not wait for a slow Redis.
func (r *ReadThrough) begin(kind Kind, id string) uint64 {
	change := r.stripe(kind, id).Add(1)
	// New callers must not join a flight that started before the change.
	r.group.Forget(flightKey(cacheKey{kind, id}))
	if r.shared == nil {
		return change
	}
	return r.markPending(kind, id, change)
}

// deleteShared deletes a record's shared entry, and forgets its pending
// deletion once done.
func (r *ReadThrough) deleteShared(ctx context.Context, kind Kind, id string, change uint64) error {
	if r.shared == nil {
		return nil
	}
	err := r.sharedDo(ctx, kind, id, func(ctx context.Context) error {
		return r.shared.Delete(ctx, kind, id)
	})
	if err != nil {
		r.observe("write_error")
		return fmt.Errorf("userstore: delete the Redis cache entry of a changed %s (retried; not trusted until then): %w", kind, err)
	}
	r.unmarkPending(kind, id, change)
	return nil
}

// Reset applies a reset of the change notifications (they were
// disconnected, and changes may have been missed): answers in flight are
// not written back. Entries already in the shared cache expire by their
// TTL; OriginChain.Reset also purges the in-process cache.
func (r *ReadThrough) Reset() {
	r.epoch.Add(1)
}

func pendingKey(kind Kind, id string) string { return flightKey(cacheKey{kind, id}) }

// markPending records that a record's shared entry must be deleted, and
// returns the change stamp to clear it with.
func (r *ReadThrough) markPending(kind Kind, id string, change uint64) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := pendingKey(kind, id)
	if _, ok := r.pending[k]; !ok && len(r.pending) >= maxPending {
		// Too many to remember: trust no shared entry until every entry
		// written before now has expired.
		r.until = r.now().Add(max(r.ttl, r.negTTL))
		r.bypass.Store(true)
		return change
	}
	r.pending[k] = pendingDelete{kind: kind, id: id, change: change, at: r.now()}
	r.npending.Store(int64(len(r.pending)))
	return change
}

// unmarkPending forgets a pending deletion, unless a newer change of the
// record is pending.
func (r *ReadThrough) unmarkPending(kind Kind, id string, change uint64) {
	if r.npending.Load() == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	k := pendingKey(kind, id)
	if p, ok := r.pending[k]; ok && p.change <= change {
		delete(r.pending, k)
		r.npending.Store(int64(len(r.pending)))
	}
}

// overwritten forgets a pending deletion made obsolete by a write-back of
// an answer read after the change (the flight started at stamp change).
func (r *ReadThrough) overwritten(kind Kind, id string, change uint64) {
	r.unmarkPending(kind, id, change)
}

// distrusted reports whether a record's shared entry may predate a change
// whose deletion failed.
func (r *ReadThrough) distrusted(kind Kind, id string) bool {
	if r.npending.Load() == 0 && !r.bypass.Load() {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if r.bypass.Load() {
		if now.Before(r.until) {
			return true
		}
		r.bypass.Store(false)
	}
	k := pendingKey(kind, id)
	p, ok := r.pending[k]
	if !ok {
		return false
	}
	if now.Sub(p.at) >= max(r.ttl, r.negTTL) {
		// Whatever was written before the change has expired.
		delete(r.pending, k)
		r.npending.Store(int64(len(r.pending)))
		return false
	}
	return true
}

// Pending returns the number of deletions of the shared cache waiting for a
// retry.
func (r *ReadThrough) Pending() int { return int(r.npending.Load()) }

// RetryPending tries the pending deletions again and returns how many are
// left. Those older than the longest TTL are dropped: the entry they were
// to delete has expired.
func (r *ReadThrough) RetryPending(ctx context.Context) int {
	if r.npending.Load() == 0 {
		return 0
	}
	r.mu.Lock()
	now := r.now()
	todo := make([]pendingDelete, 0, len(r.pending))
	for k, p := range r.pending {
		if now.Sub(p.at) >= max(r.ttl, r.negTTL) {
			delete(r.pending, k)
			continue
		}
		todo = append(todo, p)
	}
	r.npending.Store(int64(len(r.pending)))
	r.mu.Unlock()
	for _, p := range todo {
		if ctx.Err() != nil {
			break
		}
		if err := r.deleteShared(ctx, p.kind, p.id, p.change); errors.Is(err, ErrCircuitOpen) {
			break // Redis is down: the next round tries again
		}
	}
	return r.Pending()
}

// Run retries the pending deletions every interval (DefaultPendingRetry
// when not positive) until ctx is done.
func (r *ReadThrough) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultPendingRetry
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if left := r.RetryPending(ctx); left > 0 {
				r.warn("Redis cache entries of changed records not deleted yet; they are not trusted until they are",
					slog.Int("pending", left))
			}
		}
	}
}
