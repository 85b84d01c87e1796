package userstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-authz/gatehouse/internal/testkit"
)

var errBackend = errors.New("backend exploded")

// fakeOrigin is a scripted Directory. When gate is set, every lookup waits
// for it to be closed (or for its ctx) before answering.
type fakeOrigin struct {
	mu      sync.Mutex
	status  map[string]Status
	err     error
	gate    chan struct{}
	entered chan struct{} // receives once per call, if set (buffered)
	calls   atomic.Int64
	ctxErrs []error // ctx.Err() seen by each call when it returned
}

func newFakeOrigin() *fakeOrigin { return &fakeOrigin{status: map[string]Status{}} }

func (f *fakeOrigin) set(id string, st Status) {
	f.mu.Lock()
	f.status[id] = st
	f.mu.Unlock()
}

func (f *fakeOrigin) fail(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func (f *fakeOrigin) Lookup(ctx context.Context, _ Kind, id string) (Status, error) {
	f.calls.Add(1)
	f.mu.Lock()
	gate, entered := f.gate, f.entered
	f.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ctxErrs = append(f.ctxErrs, ctx.Err())
	if err := ctx.Err(); err != nil {
		return NotFound, fmt.Errorf("fake: %w: %w", ErrUnavailable, err)
	}
	if f.err != nil {
		return NotFound, f.err
	}
	return f.status[id], nil
}

type outcomes struct {
	mu sync.Mutex
	n  map[string]int
}

func (o *outcomes) record(layer, outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n == nil {
		o.n = map[string]int{}
	}
	o.n[layer+"/"+outcome]++
}

func (o *outcomes) get(k string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n[k]
}

// recv bounds every wait on the code under test, so a bug hangs one test for
// seconds instead of the suite until go test's timeout.
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for the code under test")
		panic("unreachable")
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTestCache(origin Directory, clock *testkit.Clock, o *outcomes, opts CacheOptions) *Cache {
	opts.Now = clock.Now
	opts.Logger = quietLogger()
	if o != nil {
		opts.OnLookup = o.record
	}
	return NewCache(origin, opts)
}

func lookup(t *testing.T, d Directory, id string) Status {
	t.Helper()
	st, err := d.Lookup(t.Context(), User, id)
	if err != nil {
		t.Fatalf("Lookup(%q): %v", id, err)
	}
	return st
}

func TestCacheTTLs(t *testing.T) {
	origin := newFakeOrigin()
	origin.set("on", Active)
	origin.set("off", Inactive)
	clock := testkit.NewClock(time.Unix(1_700_000_000, 0))
	var o outcomes
	c := newTestCache(origin, clock, &o, CacheOptions{TTL: 30 * time.Second, NegativeTTL: 5 * time.Second})

	for _, tc := range []struct {
		id        string
		first     Status
		changed   Status
		ttl       time.Duration
		callsDiff int64
	}{
		{"on", Active, Inactive, 30 * time.Second, 0},
		{"off", Inactive, Active, 5 * time.Second, 0},
		{"missing", NotFound, Active, 5 * time.Second, 0},
	} {
		t.Run(tc.id, func(t *testing.T) {
			start := clock.Now()
			calls := origin.calls.Load()
			if got := lookup(t, c, tc.id); got != tc.first {
				t.Fatalf("first lookup = %s, want %s", got, tc.first)
			}
			origin.set(tc.id, tc.changed)
			clock.Advance(tc.ttl - time.Nanosecond)
			if got := lookup(t, c, tc.id); got != tc.first {
				t.Fatalf("just before TTL: %s, want cached %s", got, tc.first)
			}
			if n := origin.calls.Load() - calls; n != 1 {
				t.Fatalf("origin calls within TTL = %d, want 1", n)
			}
			clock.Set(start.Add(tc.ttl)) // expiry is inclusive
			if got := lookup(t, c, tc.id); got != tc.changed {
				t.Fatalf("at TTL: %s, want fresh %s", got, tc.changed)
			}
			if n := origin.calls.Load() - calls; n != 2 {
				t.Fatalf("origin calls after TTL = %d, want 2", n)
			}
		})
	}
	if o.get("cache/hit") != 3 || o.get("cache/miss") != 6 {
		t.Fatalf("outcomes = %v", o.n)
	}
}

func TestCacheNegativeTTLDisabled(t *testing.T) {
	origin := newFakeOrigin()
	c := newTestCache(origin, testkit.NewClock(time.Unix(0, 0)), nil, CacheOptions{NegativeTTL: -1})
	lookup(t, c, "x")
	lookup(t, c, "x")
	if n := origin.calls.Load(); n != 2 {
		t.Fatalf("origin calls = %d, want 2 (NotFound must not be cached)", n)
	}
}

func TestCacheKindsAreSeparate(t *testing.T) {
	origin := &kindOrigin{}
	c := NewCache(origin, CacheOptions{Logger: quietLogger()})
	if st, _ := c.Lookup(t.Context(), User, "x"); st != Active {
		t.Fatalf("user = %s", st)
	}
	if st, _ := c.Lookup(t.Context(), App, "x"); st != Inactive {
		t.Fatalf("app = %s, served the user's cached entry", st)
	}
}

// kindOrigin answers Active for users and Inactive for apps.
type kindOrigin struct{}

func (kindOrigin) Lookup(_ context.Context, k Kind, _ string) (Status, error) {
	if k == User {
		return Active, nil
	}
	return Inactive, nil
}

func TestCacheOriginErrorFailsClosed(t *testing.T) {
	origin := newFakeOrigin()
	origin.set("u", Active)
	origin.fail(errBackend) // does not wrap ErrUnavailable: the cache must add it
	var o outcomes
	c := newTestCache(origin, testkit.NewClock(time.Unix(0, 0)), &o, CacheOptions{})
	for i := range 2 {
		st, err := c.Lookup(t.Context(), User, "u")
		if err == nil || st == Active {
			t.Fatalf("lookup %d = %s, %v; want an error and never Active", i, st, err)
		}
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, errBackend) {
			t.Fatalf("err = %v; want it to wrap ErrUnavailable and the origin error", err)
		}
	}
	if n := origin.calls.Load(); n != 2 {
		t.Fatalf("origin calls = %d, want 2: errors must not be cached", n)
	}
	if o.get("cache/error") != 2 {
		t.Fatalf("outcomes = %v", o.n)
	}
	origin.fail(nil)
	if got := lookup(t, c, "u"); got != Active {
		t.Fatalf("after recovery = %s, want Active", got)
	}
}

func TestCacheCancelledContext(t *testing.T) {
	origin := newFakeOrigin()
	origin.set("u", Active)
	c := newTestCache(origin, testkit.NewClock(time.Unix(0, 0)), nil, CacheOptions{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	st, err := c.Lookup(ctx, User, "u")
	if err == nil || st == Active || !errors.Is(err, context.Canceled) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Lookup = %s, %v; want an error wrapping context.Canceled and ErrUnavailable", st, err)
	}
	if n := origin.calls.Load(); n != 0 {
		t.Fatalf("origin called %d times for a dead context", n)
	}
}

func TestCacheCallerDeadlineWhileOriginHangs(t *testing.T) {
	origin := newFakeOrigin()
	origin.set("u", Active)
	origin.gate = make(chan struct{})
	defer close(origin.gate)
	// A long LookupTimeout: the caller's own deadline must be what frees it.
	c := newTestCache(origin, testkit.NewClock(time.Unix(0, 0)), nil, CacheOptions{LookupTimeout: time.Minute})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	done := make(chan struct{})
	var st Status
	var err error
	go func() {
		defer close(done)
		st, err = c.Lookup(ctx, User, "u")
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Lookup did not return after its context's deadline")
	}
	if err == nil || st == Active || !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Lookup = %s, %v; want an error wrapping DeadlineExceeded and ErrUnavailable", st, err)
	}
}

func TestCacheLookupTimeoutBoundsOrigin(t *testing.T) {
	origin := newFakeOrigin()
	origin.set("u", Active)
	origin.gate = make(chan struct{}) // never closed: only the timeout ends the call
	c := newTestCache(origin, testkit.NewClock(time.Unix(0, 0)), nil, CacheOptions{LookupTimeout: 20 * time.Millisecond})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	st, err := c.Lookup(ctx, User, "u")
	if err == nil || st == Active || !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lookup = %s, %v; want the origin's timeout error", st, err)
	}
	if ctx.Err() != nil {
		t.Fatal("the caller's 10 s context expired: LookupTimeout did not bound the origin call")
	}
}

func TestCacheSingleFlight(t *testing.T) {
	const n = 64
	origin := newFakeOrigin()
	gate := make(chan struct{})
	origin.gate = gate
	var o outcomes
	c := newTestCache(origin, testkit.NewClock(time.Unix(0, 0)), &o, CacheOptions{})
	var started, wg sync.WaitGroup
	started.Add(n)
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			started.Done()
			st, err := c.Lookup(t.Context(), User, "missing")
			if err == nil && st != NotFound {
				err = fmt.Errorf("status %s, want not_found", st)
			}
			errs <- err
		}()
	}
	started.Wait()
	// Give the goroutines time to reach the flight. If some arrive later
	// they hit the cached answer, so the assertion below cannot fail
	// spuriously; the grace only makes "all joined one flight" likely.
	time.Sleep(50 * time.Millisecond)
	close(gate)
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()
	recv(t, allDone)
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if calls := origin.calls.Load(); calls != 1 {
		t.Fatalf("origin calls = %d for %d concurrent lookups of one key, want 1", calls, n)
	}
	if got := o.get("cache/miss") + o.get("cache/hit"); got != n {
		t.Fatalf("outcomes = %v, want %d in total", o.n, n)
	}
}

func TestCacheFirstCallerLeavingDoesNotCancelFlight(t *testing.T) {
	origin := newFakeOrigin()
	origin.set("u", Active)
	gate := make(chan struct{})
	origin.gate = gate
	origin.entered = make(chan struct{}, 4)
	c := newTestCache(origin, testkit.NewClock(time.Unix(0, 0)), nil, CacheOptions{LookupTimeout: time.Minute})

	ctxA, cancelA := context.WithCancel(t.Context())
	errA := make(chan error, 1)
	go func() {
		_, err := c.Lookup(ctxA, User, "u")
		errA <- err
	}()
	recv(t, origin.entered) // A's flight reached the origin

	type result struct {
		st  Status
		err error
	}
	resB := make(chan result, 1)
	go func() {
		st, err := c.Lookup(t.Context(), User, "u")
		resB <- result{st, err}
	}()
	time.Sleep(20 * time.Millisecond) // let B join the flight (see TestCacheSingleFlight)

	cancelA()
	select {
	case err := <-errA:
		if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrUnavailable) {
			t.Fatalf("A's error = %v, want context.Canceled and ErrUnavailable", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("A did not return when its context was cancelled")
	}
	close(gate)
	select {
	case r := <-resB:
		if r.err != nil || r.st != Active {
			t.Fatalf("B = %s, %v; want Active", r.st, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("B did not get the flight's answer")
	}
	if n := origin.calls.Load(); n != 1 {
		t.Fatalf("origin calls = %d, want 1", n)
	}
	origin.mu.Lock()
	defer origin.mu.Unlock()
	if len(origin.ctxErrs) != 1 || origin.ctxErrs[0] != nil {
		t.Fatalf("origin saw ctx errors %v; the flight must not inherit A's cancellation", origin.ctxErrs)
	}
}

func TestCacheStaleIfError(t *testing.T) {
	origin := newFakeOrigin()
	origin.set("u", Active)
	origin.set("gone", Inactive)
	clock := testkit.NewClock(time.Unix(1_700_000_000, 0))
	var o outcomes
	c := newTestCache(origin, clock, &o, CacheOptions{
		TTL: 10 * time.Second, NegativeTTL: 5 * time.Second, StaleIfError: time.Minute,
	})
	lookup(t, c, "u")
	lookup(t, c, "gone")
	origin.fail(fmt.Errorf("redis: %w", ErrUnavailable))

	clock.Advance(30 * time.Second) // both expired, both within the stale window
	if got := lookup(t, c, "u"); got != Active {
		t.Fatalf("stale u = %s, want Active", got)
	}
	if got := lookup(t, c, "gone"); got != Inactive {
		t.Fatalf("stale gone = %s, want Inactive", got)
	}
	if o.get("cache/stale") != 2 {
		t.Fatalf("outcomes = %v, want 2 stale", o.n)
	}
	if _, err := c.Lookup(t.Context(), User, "never-cached"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("uncached lookup during outage: err = %v, want ErrUnavailable", err)
	}

	clock.Advance(30 * time.Second) // age == StaleIfError: too old
	st, err := c.Lookup(t.Context(), User, "u")
	if err == nil || st == Active || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("beyond the stale window = %s, %v; want ErrUnavailable", st, err)
	}
}

func TestCacheNoStaleByDefault(t *testing.T) {
	origin := newFakeOrigin()
	origin.set("u", Active)
	clock := testkit.NewClock(time.Unix(0, 0))
	c := newTestCache(origin, clock, nil, CacheOptions{TTL: 10 * time.Second})
	lookup(t, c, "u")
	origin.fail(errBackend)
	clock.Advance(10 * time.Second)
	if st, err := c.Lookup(t.Context(), User, "u"); err == nil || st == Active {
		t.Fatalf("expired entry with StaleIfError 0 = %s, %v; want an error", st, err)
	}
}

func TestCacheInvalidateAndPurge(t *testing.T) {
	origin := newFakeOrigin()
	origin.set("a", Active)
	origin.set("b", Active)
	c := newTestCache(origin, testkit.NewClock(time.Unix(0, 0)), nil, CacheOptions{})
	lookup(t, c, "a")
	lookup(t, c, "b")
	origin.set("a", Inactive)
	origin.set("b", Inactive)
	c.Invalidate(User, "a")
	if got := lookup(t, c, "a"); got != Inactive {
		t.Fatalf("after Invalidate: %s, want Inactive", got)
	}
	if got := lookup(t, c, "b"); got != Active {
		t.Fatalf("b should still be cached: %s", got)
	}
	c.Purge()
	if c.Len() != 0 {
		t.Fatalf("Len after Purge = %d", c.Len())
	}
	if got := lookup(t, c, "b"); got != Inactive {
		t.Fatalf("after Purge: %s, want Inactive", got)
	}
}

func TestCacheInvalidateDuringFlightIsNotCached(t *testing.T) {
	origin := newFakeOrigin()
	origin.set("u", Active)
	gate := make(chan struct{})
	origin.gate = gate
	origin.entered = make(chan struct{}, 4)
	c := newTestCache(origin, testkit.NewClock(time.Unix(0, 0)), nil, CacheOptions{})
	res := make(chan Status, 1)
	go func() {
		st, _ := c.Lookup(t.Context(), User, "u")
		res <- st
	}()
	recv(t, origin.entered)
	c.Invalidate(User, "u") // the record changed while its lookup was in flight
	origin.mu.Lock()
	origin.gate = nil
	origin.mu.Unlock()
	close(gate)
	if st := recv(t, res); st != Active {
		t.Fatalf("in-flight answer = %s, want Active (it is still returned)", st)
	}
	lookup(t, c, "u")
	if n := origin.calls.Load(); n != 2 {
		t.Fatalf("origin calls = %d, want 2: the pre-invalidation answer must not be cached", n)
	}
}

func TestCacheHitZeroAllocs(t *testing.T) {
	origin := newFakeOrigin()
	origin.set("3f2504e0-4f89-11d3-9a0c-0305e82c3301", Active)
	c := NewCache(origin, CacheOptions{Logger: quietLogger(), OnLookup: func(string, string) {}})
	ctx := t.Context()
	lookup(t, c, "3f2504e0-4f89-11d3-9a0c-0305e82c3301")
	allocs := testing.AllocsPerRun(1000, func() {
		if st, err := c.Lookup(ctx, User, "3f2504e0-4f89-11d3-9a0c-0305e82c3301"); err != nil || st != Active {
			t.Fatalf("Lookup = %s, %v", st, err)
		}
	})
	if allocs != 0 {
		t.Fatalf("cache hit allocates %v times, want 0", allocs)
	}
}

func BenchmarkCacheHit(b *testing.B) {
	origin := newFakeOrigin()
	const id = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
	origin.set(id, Active)
	c := NewCache(origin, CacheOptions{Logger: quietLogger()})
	ctx := context.Background()
	if _, err := c.Lookup(ctx, User, id); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		c.Lookup(ctx, User, id)
	}
}

func BenchmarkCacheHitParallel(b *testing.B) {
	origin := newFakeOrigin()
	c := NewCache(origin, CacheOptions{Logger: quietLogger()})
	ctx := context.Background()
	ids := make([]string, 1024)
	for i := range ids {
		ids[i] = fmt.Sprintf("%08d-4f89-11d3-9a0c-0305e82c3301", i)
		origin.set(ids[i], Active)
		c.Lookup(ctx, User, ids[i])
	}
	b.ReportAllocs()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			c.Lookup(ctx, User, ids[i&1023])
			i++
		}
	})
}

// An origin error that is not an outage (no ErrUnavailable: a bug, an
// unexpected answer) is refused, never covered by a stale entry.
func TestCacheNoStaleForNonOutage(t *testing.T) {
	origin := newFakeOrigin()
	origin.set("u", Active)
	clock := testkit.NewClock(time.Unix(0, 0))
	var o outcomes
	c := newTestCache(origin, clock, &o, CacheOptions{TTL: 10 * time.Second, StaleIfError: time.Hour})
	lookup(t, c, "u")
	origin.fail(errBackend)
	clock.Advance(20 * time.Second)
	if st, err := c.Lookup(t.Context(), User, "u"); err == nil || st == Active || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("non-outage error with a stale entry = %s, %v; want an error", st, err)
	}
	if o.get("cache/stale") != 0 {
		t.Fatalf("outcomes = %v, want no stale answer", o.n)
	}
}
