package userstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-authz/gatehouse/internal/testkit"
)

// fakeShared is a scripted SharedCache: the fast unit tests' stand-in for
// Redis (the real one is exercised in origin_test.go).
type fakeShared struct {
	mu      sync.Mutex
	entries map[string]sharedEntry
	getErr  error
	setErr  error
	delErr  error
	// afterSet, if set, runs after each successful Set (outside the lock).
	afterSet func()
	sets     atomic.Int64
	dels     atomic.Int64
}

type sharedEntry struct {
	st  Status
	ttl time.Duration
}

func newFakeShared() *fakeShared { return &fakeShared{entries: map[string]sharedEntry{}} }

func sk(kind Kind, id string) string { return kind.String() + ":" + id }

func (f *fakeShared) Get(_ context.Context, kind Kind, id string) (Status, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.getErr != nil {
		return NotFound, false, f.getErr
	}
	e, ok := f.entries[sk(kind, id)]
	return e.st, ok, nil
}

func (f *fakeShared) Set(_ context.Context, kind Kind, id string, st Status, ttl time.Duration) error {
	f.mu.Lock()
	if f.setErr != nil {
		f.mu.Unlock()
		return f.setErr
	}
	f.entries[sk(kind, id)] = sharedEntry{st, ttl}
	hook := f.afterSet
	f.mu.Unlock()
	f.sets.Add(1)
	if hook != nil {
		hook()
	}
	return nil
}

func (f *fakeShared) Delete(_ context.Context, kind Kind, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dels.Add(1)
	if f.delErr != nil {
		return f.delErr
	}
	delete(f.entries, sk(kind, id))
	return nil
}

func (f *fakeShared) put(kind Kind, id string, st Status) {
	f.mu.Lock()
	f.entries[sk(kind, id)] = sharedEntry{st, time.Hour}
	f.mu.Unlock()
}

func (f *fakeShared) get(kind Kind, id string) (sharedEntry, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.entries[sk(kind, id)]
	return e, ok
}

func (f *fakeShared) script(get, set, del error) {
	f.mu.Lock()
	f.getErr, f.setErr, f.delErr = get, set, del
	f.mu.Unlock()
}

var errRedisDown = fmt.Errorf("fake redis: %w", ErrUnavailable)

func newTestReadThrough(origin Directory, shared SharedCache, clock *testkit.Clock, o *outcomes, opts ReadThroughOptions) *ReadThrough {
	opts.Now = clock.Now
	opts.Logger = quietLogger()
	if o != nil {
		opts.OnLookup = o.record
	}
	return NewReadThrough(origin, shared, opts)
}

func TestReadThroughWritesBackWithTTLs(t *testing.T) {
	origin := newFakeOrigin()
	origin.set("on", Active)
	origin.set("off", Inactive)
	shared := newFakeShared()
	var o outcomes
	r := newTestReadThrough(origin, shared, testkit.NewClock(time.Unix(0, 0)), &o, ReadThroughOptions{})
	for id, want := range map[string]Status{"on": Active, "off": Inactive, "nobody": NotFound} {
		if got := lookup(t, r, id); got != want {
			t.Fatalf("%s: %s, want %s", id, got, want)
		}
		wantTTL := DefaultSharedNegativeTTL
		if want == Active {
			wantTTL = DefaultSharedTTL
		}
		if e, ok := shared.get(User, id); !ok || e.st != want || e.ttl != wantTTL {
			t.Fatalf("%s: shared entry %+v (present %v), want %s for %s", id, e, ok, want, wantTTL)
		}
	}
	// Served from the shared cache now, whatever the origin says.
	origin.set("on", Inactive)
	if got := lookup(t, r, "on"); got != Active {
		t.Fatalf("second lookup: %s, want the shared cache's active", got)
	}
	if calls := origin.calls.Load(); calls != 3 {
		t.Fatalf("origin calls = %d, want 3", calls)
	}
	if o.get("redis/hit") != 1 || o.get("redis/miss") != 3 {
		t.Fatalf("outcomes = %v", o.n)
	}
}

func TestReadThroughNegativeTTLDisabled(t *testing.T) {
	origin := newFakeOrigin()
	shared := newFakeShared()
	r := newTestReadThrough(origin, shared, testkit.NewClock(time.Unix(0, 0)), nil, ReadThroughOptions{NegativeTTL: -1})
	lookup(t, r, "nobody")
	if _, ok := shared.get(User, "nobody"); ok {
		t.Fatal("NotFound written back with the negative TTL disabled")
	}
}

func TestReadThroughSharedDownGoesToOrigin(t *testing.T) {
	origin := newFakeOrigin()
	origin.set("on", Active)
	shared := newFakeShared()
	shared.put(User, "on", Inactive) // would be served if Redis answered
	shared.script(errRedisDown, errRedisDown, nil)
	var o outcomes
	r := newTestReadThrough(origin, shared, testkit.NewClock(time.Unix(0, 0)), &o, ReadThroughOptions{})
	if got := lookup(t, r, "on"); got != Active {
		t.Fatalf("Redis down: %s, want the origin's active", got)
	}
	if o.get("redis/error") != 1 || o.get("redis/write_error") != 1 {
		t.Fatalf("outcomes = %v", o.n)
	}
}

func TestReadThroughCircuitSkipsDeadRedis(t *testing.T) {
	origin := newFakeOrigin()
	origin.set("on", Active)
	shared := newFakeShared()
	shared.script(errRedisDown, errRedisDown, errRedisDown)
	clock := testkit.NewClock(time.Unix(0, 0))
	circuits := NewCircuits(nil, func(context.Context, Kind, string) string { return "" },
		CircuitOptions{Threshold: 2, Cooldown: time.Minute, Now: clock.Now, Logger: quietLogger()})
	r := newTestReadThrough(origin, shared, clock, nil, ReadThroughOptions{Circuits: circuits})
	for range 3 {
		if got := lookup(t, r, "on"); got != Active {
			t.Fatalf("%s, want active from the origin", got)
		}
	}
	if st, _, _ := circuits.Circuit("").State(); st != CircuitOpen {
		t.Fatalf("circuit %s after failures, want open", st)
	}
	// Open: Redis is not even asked.
	shared.mu.Lock()
	shared.getErr = errors.New("must not be called")
	shared.mu.Unlock()
	if got := lookup(t, r, "on"); got != Active {
		t.Fatalf("circuit open: %s, want active from the origin", got)
	}
}

func TestReadThroughInvalidSharedEntryIsReplaced(t *testing.T) {
	origin := newFakeOrigin()
	origin.set("off", Inactive)
	shared := newFakeShared()
	shared.script(fmt.Errorf("fake: %w", ErrInvalidRecord), nil, nil)
	var o outcomes
	r := newTestReadThrough(origin, shared, testkit.NewClock(time.Unix(0, 0)), &o, ReadThroughOptions{})
	if got := lookup(t, r, "off"); got != Inactive {
		t.Fatalf("%s, want the origin's inactive", got)
	}
	if e, ok := shared.get(User, "off"); !ok || e.st != Inactive {
		t.Fatalf("unreadable entry not replaced: %+v %v", e, ok)
	}
	if o.get("redis/invalid") != 1 {
		t.Fatalf("outcomes = %v", o.n)
	}
}

func TestReadThroughOriginErrors(t *testing.T) {
	origin := newFakeOrigin()
	shared := newFakeShared()
	r := newTestReadThrough(origin, shared, testkit.NewClock(time.Unix(0, 0)), nil, ReadThroughOptions{})

	origin.fail(fmt.Errorf("pg: %w", ErrUnavailable))
	if st, err := r.Lookup(t.Context(), User, "x"); !errors.Is(err, ErrUnavailable) || st != NotFound {
		t.Fatalf("origin down: %s, %v; want an error wrapping ErrUnavailable", st, err)
	}
	origin.fail(fmt.Errorf("pg: %w", ErrInvalidRecord))
	if _, err := r.Lookup(t.Context(), User, "x"); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("invalid record: %v", err)
	}
	if _, ok := shared.get(User, "x"); ok {
		t.Fatal("a failed lookup was written back")
	}
	if _, err := r.Lookup(t.Context(), Kind(9), "x"); err == nil {
		t.Fatal("unknown kind accepted")
	}
}

func TestReadThroughSingleFlight(t *testing.T) {
	const n = 32
	origin := newFakeOrigin()
	origin.set("on", Active)
	gate := make(chan struct{})
	origin.gate = gate
	origin.entered = make(chan struct{}, n)
	shared := newFakeShared()
	r := newTestReadThrough(origin, shared, testkit.NewClock(time.Unix(0, 0)), nil, ReadThroughOptions{})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			st, err := r.Lookup(t.Context(), User, "on")
			if err == nil && st != Active {
				err = fmt.Errorf("status %s", st)
			}
			errs <- err
		})
	}
	recv(t, origin.entered)
	time.Sleep(50 * time.Millisecond) // let the others join the flight (or hit the shared cache after it)
	close(gate)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	recv(t, done)
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if calls := origin.calls.Load(); calls != 1 {
		t.Fatalf("origin calls = %d for %d concurrent lookups of one record, want 1", calls, n)
	}
	if sets := shared.sets.Load(); sets != 1 {
		t.Fatalf("write-backs = %d, want 1", sets)
	}
}

// An answer read from the origin before a change must not be written back
// after the change's deletion: it would be served for a whole TTL.
func TestReadThroughChangeDuringFlightIsNotWrittenBack(t *testing.T) {
	origin := newFakeOrigin()
	origin.set("u", Active)
	gate := make(chan struct{})
	origin.gate = gate
	origin.entered = make(chan struct{}, 4)
	shared := newFakeShared()
	r := newTestReadThrough(origin, shared, testkit.NewClock(time.Unix(0, 0)), nil, ReadThroughOptions{})
	res := make(chan Status, 1)
	go func() {
		st, _ := r.Lookup(context.Background(), User, "u")
		res <- st
	}()
	recv(t, origin.entered) // the origin read "active"
	origin.set("u", Inactive)
	if err := r.Changed(t.Context(), User, "u"); err != nil {
		t.Fatal(err)
	}
	close(gate)
	recv(t, res)
	// Not even written then deleted: another replica could read it between.
	if e, ok := shared.get(User, "u"); ok || shared.sets.Load() != 0 {
		t.Fatalf("answer from before the change written back: %+v (writes: %d)", e, shared.sets.Load())
	}
	// A new lookup does not join the old flight; it reads the change.
	origin.mu.Lock()
	origin.gate = nil
	origin.mu.Unlock()
	if got := lookup(t, r, "u"); got != Inactive {
		t.Fatalf("after the change: %s, want inactive", got)
	}
}

// A change that lands while the write-back is on its way to Redis: the
// change's deletion may reach Redis first, so the write-back deletes again.
func TestReadThroughChangeDuringWriteBackIsDeleted(t *testing.T) {
	origin := newFakeOrigin()
	origin.set("u", Active)
	shared := newFakeShared()
	r := newTestReadThrough(origin, shared, testkit.NewClock(time.Unix(0, 0)), nil, ReadThroughOptions{})
	var once sync.Once
	shared.afterSet = func() {
		once.Do(func() {
			// The change's deletion runs before the write "arrives".
			origin.set("u", Inactive)
			shared.mu.Lock()
			shared.afterSet = nil
			shared.mu.Unlock()
			if err := r.Changed(context.Background(), User, "u"); err != nil {
				t.Error(err)
			}
			shared.put(User, "u", Active) // the write-back landing late
		})
	}
	lookup(t, r, "u")
	if e, ok := shared.get(User, "u"); ok {
		t.Fatalf("stale write-back survived the change: %+v", e)
	}
}

// A change whose deletion fails (Redis unreachable for that moment) leaves
// the shared entry untrusted until a retry deletes it.
func TestReadThroughFailedDeleteIsPendingAndRetried(t *testing.T) {
	origin := newFakeOrigin()
	origin.set("u", Active)
	shared := newFakeShared()
	clock := testkit.NewClock(time.Unix(0, 0))
	r := newTestReadThrough(origin, shared, clock, nil, ReadThroughOptions{})
	lookup(t, r, "u") // cached active in "Redis"
	origin.set("u", Inactive)
	shared.script(nil, errRedisDown, errRedisDown)
	if err := r.Changed(t.Context(), User, "u"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Changed with Redis failing: %v, want an error", err)
	}
	if r.Pending() != 1 {
		t.Fatalf("pending = %d, want 1", r.Pending())
	}
	// Redis reads work again but the delete has not happened: the stale
	// active entry must not be served.
	if got := lookup(t, r, "u"); got != Inactive {
		t.Fatalf("stale shared entry served after a failed delete: %s", got)
	}
	if left := r.RetryPending(t.Context()); left != 1 {
		t.Fatalf("retry with Redis still failing: %d left, want 1", left)
	}
	shared.script(nil, nil, nil)
	if left := r.RetryPending(t.Context()); left != 0 {
		t.Fatalf("retry with Redis back: %d left, want 0", left)
	}
	if _, ok := shared.get(User, "u"); ok {
		t.Fatal("the retried delete did not delete")
	}
}

// A pending deletion is dropped once the entry it was to delete has
// expired (the longest TTL), and a write-back of an answer read after the
// change also makes it obsolete.
func TestReadThroughPendingExpiresAndIsOverwritten(t *testing.T) {
	origin := newFakeOrigin()
	origin.set("u", Active)
	origin.set("v", Active)
	shared := newFakeShared()
	clock := testkit.NewClock(time.Unix(0, 0))
	r := newTestReadThrough(origin, shared, clock, nil, ReadThroughOptions{TTL: time.Minute, NegativeTTL: time.Second})
	shared.script(nil, nil, errRedisDown)
	_ = r.Changed(t.Context(), User, "u")
	_ = r.Changed(t.Context(), User, "v")
	if r.Pending() != 2 {
		t.Fatalf("pending = %d", r.Pending())
	}
	// v is looked up after its change: the write-back replaces the entry.
	lookup(t, r, "v")
	if r.Pending() != 1 {
		t.Fatalf("pending after a fresh write-back = %d, want 1", r.Pending())
	}
	clock.Advance(time.Minute)
	if left := r.RetryPending(t.Context()); left != 0 {
		t.Fatalf("pending older than the TTL kept: %d", left)
	}
}

func TestOriginChainChangedAndReset(t *testing.T) {
	origin := newFakeOrigin()
	origin.set("0b6f3c1e-6a43-4c55-9f0e-3f4f1b7d1a01", Active)
	shared := newFakeShared()
	clock := testkit.NewClock(time.Unix(0, 0))
	c := NewOriginChain(origin, shared, OriginChainOptions{
		Cache:           CacheOptions{Now: clock.Now, Logger: quietLogger()},
		ReadThrough:     ReadThroughOptions{Now: clock.Now, Logger: quietLogger()},
		NormalizeUserID: lowerUUID,
	})
	const id = "0b6f3c1e-6a43-4c55-9f0e-3f4f1b7d1a01"
	if got := lookup(t, c, id); got != Active {
		t.Fatal(got)
	}
	origin.set(id, Inactive)
	// Cached in both layers: still active.
	if got := lookup(t, c, id); got != Active {
		t.Fatalf("%s, want the cached active", got)
	}
	// The notification spells the id in upper case: both forms are dropped.
	if err := c.Changed(t.Context(), User, "0B6F3C1E-6A43-4C55-9F0E-3F4F1B7D1A01"); err != nil {
		t.Fatal(err)
	}
	if got := lookup(t, c, id); got != Inactive {
		t.Fatalf("after the change: %s, want inactive", got)
	}
	// Reset purges the in-process layer (Redis entries expire by TTL).
	origin.set(id, Active)
	shared.mu.Lock()
	delete(shared.entries, sk(User, id))
	shared.mu.Unlock()
	if got := lookup(t, c, id); got != Inactive {
		t.Fatalf("before the reset: %s, want the in-process inactive", got)
	}
	c.Reset()
	if got := lookup(t, c, id); got != Active {
		t.Fatalf("after the reset: %s, want active", got)
	}
}

// Without Redis: in-process cache, then the origin.
func TestOriginChainWithoutRedis(t *testing.T) {
	origin := newFakeOrigin()
	origin.set("u", Active)
	c := NewOriginChain(origin, nil, OriginChainOptions{Cache: CacheOptions{Logger: quietLogger()}})
	for range 3 {
		if got := lookup(t, c, "u"); got != Active {
			t.Fatal(got)
		}
	}
	if calls := origin.calls.Load(); calls != 1 {
		t.Fatalf("origin calls = %d, want 1", calls)
	}
	origin.set("u", Inactive)
	if err := c.Changed(t.Context(), User, "u"); err != nil {
		t.Fatal(err)
	}
	if got := lookup(t, c, "u"); got != Inactive {
		t.Fatalf("after the change: %s", got)
	}
}

// activeWithError is an origin that returns Active together with an error.
type activeWithError struct{ err error }

func (o activeWithError) Lookup(context.Context, Kind, string) (Status, error) {
	return Active, o.err
}

func TestReadThroughOriginErrorIsNeverActive(t *testing.T) {
	for _, err := range []error{fmt.Errorf("pg: %w", ErrUnavailable), fmt.Errorf("pg: %w", ErrInvalidRecord)} {
		r := NewReadThrough(activeWithError{err}, nil, ReadThroughOptions{})
		st, got := r.Lookup(t.Context(), User, "x")
		if got == nil || st == Active {
			t.Fatalf("origin error %v: %s, %v; want a non-Active status with the error", err, st, got)
		}
		if errors.Is(err, ErrInvalidRecord) && st != Inactive {
			t.Fatalf("invalid record: %s; want Inactive", st)
		}
	}
}
