package userstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-authz/gatehouse/internal/logbudget"
	"github.com/gatehouse-authz/gatehouse/internal/testkit"
)

// errBadRecord is what an origin returns for a malformed record.
var errBadRecord = fmt.Errorf("redisstore: user record: %w: key holds another type", ErrInvalidRecord)

// TestCacheInvalidRecord: an invalid record is denied (Inactive), counted
// apart, never cached, and never answered from a stale entry: Redis is up
// and says the record is bad.
func TestCacheInvalidRecord(t *testing.T) {
	origin := newFakeOrigin()
	origin.set("u", Active)
	clock := testkit.NewClock(time.Unix(1_700_000_000, 0))
	var o outcomes
	c := newTestCache(origin, clock, &o, CacheOptions{TTL: 10 * time.Second, StaleIfError: time.Hour})
	if got := lookup(t, c, "u"); got != Active {
		t.Fatalf("u = %s", got)
	}
	clock.Advance(20 * time.Second) // expired, within the stale window
	origin.fail(errBadRecord)
	for i := range 2 {
		st, err := c.Lookup(t.Context(), User, "u")
		if st != Inactive || err != nil {
			t.Fatalf("lookup %d of an invalid record = %s, %v; want Inactive (a deny), no error", i, st, err)
		}
	}
	if o.get("cache/invalid") != 2 || o.get("cache/stale") != 0 || origin.calls.Load() != 3 {
		t.Fatalf("outcomes %v, %d origin calls; want 2 invalid (not cached, not stale), 3 calls", o.n, origin.calls.Load())
	}
	// Redis goes down now: the entry the invalid answer replaced is not
	// served stale (the record was bad when last read).
	origin.fail(fmt.Errorf("redis: %w", ErrUnavailable))
	if st, err := c.Lookup(t.Context(), User, "u"); !errors.Is(err, ErrUnavailable) || st == Active {
		t.Fatalf("u during an outage after an invalid answer = %s, %v; want ErrUnavailable", st, err)
	}
	// Fixed: read again at once, nothing of the bad answer was kept.
	origin.fail(nil)
	if got := lookup(t, c, "u"); got != Active {
		t.Fatalf("u after the fix = %s", got)
	}
}

// TestCircuitIgnoresInvalidRecords: however many invalid records in a row,
// the circuit stays closed (the origin answered), and they do not add up
// with real failures either.
func TestCircuitIgnoresInvalidRecords(t *testing.T) {
	origin := &flaky{}
	c := NewCircuit(origin, CircuitOptions{Threshold: 3, Logger: quietLogger()})
	ctx := context.Background()
	down := fmt.Errorf("connection refused: %w", ErrUnavailable)
	for i := range 50 {
		origin.set(errBadRecord)
		if _, err := c.Lookup(ctx, User, "bad"); !errors.Is(err, ErrInvalidRecord) {
			t.Fatalf("lookup %d: %v", i, err)
		}
		origin.set(down)
		if i%2 == 0 {
			_, _ = c.Lookup(ctx, User, "u") // one failure, then an answer again
		}
	}
	if st, _, _ := c.State(); st != CircuitClosed {
		t.Fatalf("circuit %s after invalid records; want closed", st)
	}
	origin.set(nil)
	if st, err := c.Lookup(ctx, User, "u"); st != Active || err != nil {
		t.Fatalf("healthy lookup = %s, %v", st, err)
	}
}

// partitioned answers per partition: the ids of a dead partition fail.
type partitioned struct{ dead string }

func (p *partitioned) Lookup(_ context.Context, _ Kind, id string) (Status, error) {
	if strings.HasPrefix(id, p.dead+"/") {
		return NotFound, fmt.Errorf("dial %s: connection refused: %w", p.dead, ErrUnavailable)
	}
	return Active, nil
}

// TestCircuitsPerPartition: a dead partition opens its own circuit only.
func TestCircuitsPerPartition(t *testing.T) {
	origin := &partitioned{dead: "node-a"}
	part := func(_ context.Context, _ Kind, id string) string { p, _, _ := strings.Cut(id, "/"); return p }
	var logs bytes.Buffer
	cs := NewCircuits(origin, part, CircuitOptions{Threshold: 3, Cooldown: time.Hour, Name: "redis", Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx := context.Background()
	for range 10 {
		_, _ = cs.Lookup(ctx, User, "node-a/u1")
		if st, err := cs.Lookup(ctx, User, "node-b/u2"); st != Active || err != nil {
			t.Fatalf("healthy partition = %s, %v", st, err)
		}
	}
	if _, err := cs.Lookup(ctx, User, "node-a/u1"); !errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("dead partition: %v; want its circuit open", err)
	}
	states := cs.States()
	if len(states) != 2 || states[0].Name != "node-a" || states[0].State != CircuitOpen || states[1].State != CircuitClosed {
		t.Fatalf("states = %+v", states)
	}
	if !strings.Contains(logs.String(), "origin=\"redis node-a\"") {
		t.Errorf("the log does not name the partition: %s", logs.String())
	}
	// The dead node left the topology: its circuit goes, a new one starts
	// closed.
	cs.Retain([]string{"node-b"})
	if got := cs.States(); len(got) != 1 || got[0].Name != "node-b" {
		t.Fatalf("after Retain: %+v", got)
	}
}

// TestCacheStaleWarningsBudgeted: one warning per stale answer would flood
// the logs during an outage; they go through the budget.
func TestCacheStaleWarningsBudgeted(t *testing.T) {
	origin := newFakeOrigin()
	origin.set("u", Active)
	clock := testkit.NewClock(time.Unix(1_700_000_000, 0))
	var logs bytes.Buffer
	c := NewCache(origin, CacheOptions{
		TTL: time.Second, StaleIfError: time.Hour, Now: clock.Now,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), LogBudget: logbudget.New(3),
	})
	lookup(t, c, "u")
	clock.Advance(2 * time.Second)
	origin.fail(fmt.Errorf("redis: %w", ErrUnavailable))
	for range 1000 {
		if got := lookup(t, c, "u"); got != Active {
			t.Fatalf("stale u = %s", got)
		}
	}
	// The budget counts wall-clock seconds: a slow machine may see two.
	if n := strings.Count(logs.String(), "serving stale cached entry"); n < 1 || n > 6 {
		t.Fatalf("%d stale warnings for 1000 stale answers; want the budget's 3 a second", n)
	}
}
