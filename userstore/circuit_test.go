package userstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// flaky is an origin whose answer the test sets.
type flaky struct {
	mu    sync.Mutex
	err   error
	calls int
}

func (f *flaky) Lookup(ctx context.Context, kind Kind, id string) (Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return NotFound, f.err
	}
	return Active, nil
}

func (f *flaky) set(err error) { f.mu.Lock(); f.err = err; f.mu.Unlock() }
func (f *flaky) n() int        { f.mu.Lock(); defer f.mu.Unlock(); return f.calls }

type circuitClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *circuitClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *circuitClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestCircuit(t *testing.T) {
	origin := &flaky{}
	clock := &circuitClock{t: time.Unix(1_700_000_000, 0)}
	var logs bytes.Buffer
	c := NewCircuit(origin, CircuitOptions{
		Threshold: 3, Cooldown: time.Second, Name: "redis", Now: clock.now,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	ctx := context.Background()
	down := fmt.Errorf("dial tcp 127.0.0.1:1: connection refused: %w", ErrUnavailable)

	if st, err := c.Lookup(ctx, User, "a"); st != Active || err != nil {
		t.Fatalf("closed: %v, %v", st, err)
	}
	origin.set(down)
	for i := range 3 {
		if _, err := c.Lookup(ctx, User, "a"); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrCircuitOpen) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	if st, last, _ := c.State(); st != CircuitOpen || !strings.Contains(last, "connection refused") {
		t.Fatalf("after 3 failures: %v %q", st, last)
	}
	calls := origin.n()
	for range 10 {
		_, err := c.Lookup(ctx, User, "a")
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrCircuitOpen) {
			t.Fatalf("open: %v", err)
		}
	}
	if origin.n() != calls {
		t.Fatalf("the open circuit asked the origin %d times", origin.n()-calls)
	}

	// After the cooldown one trial goes through; it fails: open again.
	clock.add(time.Second)
	if st, _, _ := c.State(); st != CircuitHalfOpen {
		t.Fatalf("after the cooldown: %v", st)
	}
	if _, err := c.Lookup(ctx, User, "a"); errors.Is(err, ErrCircuitOpen) || origin.n() != calls+1 {
		t.Fatalf("trial: %v, %d calls", err, origin.n()-calls)
	}
	if _, err := c.Lookup(ctx, User, "a"); !errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("after a failed trial: %v", err)
	}

	// A successful trial closes it.
	origin.set(nil)
	clock.add(time.Second)
	if st, err := c.Lookup(ctx, User, "a"); st != Active || err != nil {
		t.Fatalf("successful trial: %v, %v", st, err)
	}
	if st, _, _ := c.State(); st != CircuitClosed {
		t.Fatalf("after a successful trial: %v", st)
	}
	// A definite answer and a caller's cancellation never count.
	origin.set(errors.New("bug, not an outage"))
	for range 5 {
		_, _ = c.Lookup(ctx, User, "a")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	origin.set(fmt.Errorf("%w: %w", ErrUnavailable, context.Canceled))
	for range 5 {
		_, _ = c.Lookup(cancelled, User, "a")
	}
	if st, _, _ := c.State(); st != CircuitClosed {
		t.Fatalf("opened by errors that are not outages: %v", st)
	}
	// A probe's outcome opens and closes it too.
	for range 3 {
		c.Report(down)
	}
	if st, _, _ := c.State(); st != CircuitOpen {
		t.Fatalf("after failed probes: %v", st)
	}
	c.Report(nil)
	if st, _, _ := c.State(); st != CircuitClosed {
		t.Fatalf("after a good probe: %v", st)
	}
	if n := strings.Count(logs.String(), "circuit opened"); n != 2 {
		t.Errorf("opened logged %d times, want 2 (once per change):\n%s", n, logs.String())
	}
	if n := strings.Count(logs.String(), "circuit closed"); n != 2 {
		t.Errorf("closed logged %d times, want 2:\n%s", n, logs.String())
	}
}

// TestCircuitUnderCache: stale entries still answer while the circuit is
// open, and nothing is ever Active without an answer.
func TestCircuitUnderCache(t *testing.T) {
	origin := &flaky{}
	clock := &circuitClock{t: time.Unix(1_700_000_000, 0)}
	circuit := NewCircuit(origin, CircuitOptions{Threshold: 1, Cooldown: time.Minute, Now: clock.now, Logger: slog.New(slog.DiscardHandler)})
	cache := NewCache(circuit, CacheOptions{TTL: time.Second, StaleIfError: time.Minute, Now: clock.now, Logger: slog.New(slog.DiscardHandler)})
	ctx := context.Background()
	if st, err := cache.Lookup(ctx, User, "a"); st != Active || err != nil {
		t.Fatal(st, err)
	}
	origin.set(ErrUnavailable)
	clock.add(2 * time.Second)
	if _, err := cache.Lookup(ctx, User, "b"); err == nil {
		t.Fatal("uncached lookup answered during the outage")
	}
	if st, _, _ := circuit.State(); st != CircuitOpen {
		t.Fatalf("circuit %v", st)
	}
	if st, err := cache.Lookup(ctx, User, "a"); st != Active || err != nil {
		t.Fatalf("stale entry behind an open circuit: %v, %v", st, err)
	}
	if st, err := cache.Lookup(ctx, User, "c"); st != NotFound || !errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("uncached behind an open circuit: %v, %v", st, err)
	}
}
