package userstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// Circuit defaults.
const (
	DefaultCircuitThreshold = 5
	DefaultCircuitCooldown  = time.Second
)

// ErrCircuitOpen reports a lookup refused at once because the origin failed
// repeatedly and has not answered since. It always comes wrapped together
// with ErrUnavailable.
var ErrCircuitOpen = errors.New("circuit open")

// CircuitState is the state of a Circuit.
type CircuitState uint8

const (
	// CircuitClosed passes every lookup to the origin.
	CircuitClosed CircuitState = iota
	// CircuitOpen fails lookups at once.
	CircuitOpen
	// CircuitHalfOpen lets one trial lookup through; the others fail at once.
	CircuitHalfOpen
)

// String returns "closed", "open" or "half-open".
func (s CircuitState) String() string {
	switch s {
	case CircuitOpen:
		return "open"
	case CircuitHalfOpen:
		return "half-open"
	default:
		return "closed"
	}
}

// CircuitOptions configure a Circuit. Zero values select the defaults.
type CircuitOptions struct {
	// Threshold is the number of consecutive failed lookups that opens the
	// circuit (default DefaultCircuitThreshold).
	Threshold int
	// Cooldown is how long the circuit stays open before one trial lookup
	// is let through (default DefaultCircuitCooldown).
	Cooldown time.Duration
	// Name names the origin in logs ("redis").
	Name string
	// Now is the clock (default time.Now); Logger receives one line per
	// state change (default slog.Default()).
	Now    func() time.Time
	Logger *slog.Logger
}

// Circuit is a Directory that stops asking an origin that keeps failing.
//
// Closed, it passes lookups through and counts consecutive failures (errors
// wrapping ErrUnavailable, other than the caller's own cancellation). At
// Threshold it opens: lookups then fail at once with an error wrapping
// ErrUnavailable and ErrCircuitOpen, instead of each waiting for a timeout
// against a dead Redis (and holding a connection attempt). After Cooldown,
// one lookup is let through as a trial (half-open): its success closes the
// circuit, its failure opens it for another Cooldown. Report lets a health
// probe close or open it too. A Cache in front still serves stale entries
// while the circuit is open, since its errors are ordinary origin failures.
//
// An open circuit never turns into an allow: every lookup it refuses is an
// error, which the decision core answers with 503.
type Circuit struct {
	origin    Directory
	threshold int
	cooldown  time.Duration
	name      string
	now       func() time.Time
	log       *slog.Logger

	mu       sync.Mutex
	state    CircuitState
	failures int
	openedAt time.Time
	trial    bool // a half-open trial lookup is in flight
	lastErr  string
	lastAt   time.Time
}

// NewCircuit returns a Circuit in front of origin, closed.
func NewCircuit(origin Directory, opts CircuitOptions) *Circuit {
	c := &Circuit{origin: origin, threshold: opts.Threshold, cooldown: opts.Cooldown,
		name: opts.Name, now: opts.Now, log: opts.Logger}
	if c.threshold <= 0 {
		c.threshold = DefaultCircuitThreshold
	}
	if c.cooldown <= 0 {
		c.cooldown = DefaultCircuitCooldown
	}
	if c.name == "" {
		c.name = "origin"
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	return c
}

// Lookup implements Directory.
func (c *Circuit) Lookup(ctx context.Context, kind Kind, id string) (Status, error) {
	trial, err := c.admit()
	if err != nil {
		return NotFound, fmt.Errorf("userstore: %s %s lookup: %w: %w", c.name, kind, ErrUnavailable, err)
	}
	st, err := c.origin.Lookup(ctx, kind, id)
	c.record(ctx, err, trial)
	return st, err
}

// Do runs op through the circuit as Lookup runs a lookup: while the circuit
// is open it is refused at once with an error wrapping ErrUnavailable and
// ErrCircuitOpen, and its outcome is counted like a lookup's. The Redis
// cache in front of a directory origin (ReadThrough) reads, writes and
// deletes through the same circuits as Redis lookups.
func (c *Circuit) Do(ctx context.Context, op func(context.Context) error) error {
	trial, err := c.admit()
	if err != nil {
		return fmt.Errorf("userstore: %s: %w: %w", c.name, ErrUnavailable, err)
	}
	err = op(ctx)
	c.record(ctx, err, trial)
	return err
}

// admit decides whether a lookup may reach the origin, and whether it is
// the half-open trial.
func (c *Circuit) admit() (trial bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch c.state {
	case CircuitClosed:
		return false, nil
	case CircuitOpen:
		if c.now().Sub(c.openedAt) < c.cooldown {
			return false, ErrCircuitOpen
		}
		c.state = CircuitHalfOpen
		c.trial = true
		return true, nil
	default: // half-open
		if c.trial {
			return false, ErrCircuitOpen
		}
		c.trial = true
		return true, nil
	}
}

// counts reports whether err is an origin failure: not a definite answer, not
// a programming error, not a bad record (ErrInvalidRecord does not wrap
// ErrUnavailable), and not the caller's own cancellation.
func counts(ctx context.Context, err error) bool {
	if err == nil || !errors.Is(err, ErrUnavailable) {
		return false
	}
	return !errors.Is(ctx.Err(), context.Canceled)
}

func (c *Circuit) record(ctx context.Context, err error, trial bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if trial {
		c.trial = false
	}
	switch {
	case err == nil:
		c.closeLocked("a lookup succeeded")
	case errors.Is(err, ErrInvalidRecord):
		// The origin answered; the record is bad. One wrong-typed key
		// asked for under load must not trip the circuit for everyone.
		c.closeLocked("a lookup was answered")
	case counts(ctx, err):
		c.failLocked(err)
	case trial:
		// The trial told nothing (cancelled): let another one through.
		c.state = CircuitHalfOpen
	}
}

func (c *Circuit) failLocked(err error) {
	c.failures++
	c.lastErr, c.lastAt = err.Error(), c.now()
	switch c.state {
	case CircuitClosed:
		if c.failures >= c.threshold {
			c.state, c.openedAt = CircuitOpen, c.now()
			c.log.Warn("directory circuit opened: lookups fail at once (503, or stale cached entries) until it answers again",
				"origin", c.name, "consecutive_failures", c.failures, "cooldown", c.cooldown.String(), "error", c.lastErr)
		}
	default:
		c.state, c.openedAt = CircuitOpen, c.now()
	}
}

func (c *Circuit) closeLocked(why string) {
	c.failures = 0
	if c.state != CircuitClosed {
		c.state = CircuitClosed
		c.log.Info("directory circuit closed: the origin answers again", "origin", c.name, "after", why)
	}
}

// Report feeds the outcome of a health probe (a PING) into the circuit: a
// success closes it at once, so recovery does not wait for traffic, and a
// failure counts like a failed lookup.
func (c *Circuit) Report(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		c.closeLocked("a probe succeeded")
		return
	}
	c.failLocked(err)
}

// State returns the current state, the last origin error (empty if none)
// and when it happened. Errors of the origin carry no secrets (see
// Directory).
func (c *Circuit) State() (CircuitState, string, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.state
	if st == CircuitOpen && c.now().Sub(c.openedAt) >= c.cooldown {
		st = CircuitHalfOpen // the next lookup is a trial
	}
	return st, c.lastErr, c.lastAt
}

// Circuits keeps one Circuit per partition of an origin: per Redis Cluster
// master, so that a dead master opens the circuit of its own shard only and
// users on the other shards are still served. partition names the
// partition a lookup goes to (the address of the master serving the key's
// slot); a partition seen for the first time gets a closed circuit. A
// single-node origin uses one partition name for every lookup.
type Circuits struct {
	origin    Directory
	partition func(ctx context.Context, kind Kind, id string) string
	opts      CircuitOptions

	mu     sync.RWMutex
	byName map[string]*Circuit
}

// NewCircuits returns Circuits in front of origin. opts.Name is followed by
// the partition's name in logs ("redis 10.0.0.5:6379").
func NewCircuits(origin Directory, partition func(ctx context.Context, kind Kind, id string) string, opts CircuitOptions) *Circuits {
	return &Circuits{origin: origin, partition: partition, opts: opts, byName: make(map[string]*Circuit)}
}

// Lookup implements Directory through the circuit of the lookup's
// partition.
func (cs *Circuits) Lookup(ctx context.Context, kind Kind, id string) (Status, error) {
	return cs.Circuit(cs.partition(ctx, kind, id)).Lookup(ctx, kind, id)
}

// Do runs op through the circuit of the partition of a record (see
// Circuit.Do).
func (cs *Circuits) Do(ctx context.Context, kind Kind, id string, op func(context.Context) error) error {
	return cs.Circuit(cs.partition(ctx, kind, id)).Do(ctx, op)
}

// Circuit returns the circuit of a partition, creating it closed.
func (cs *Circuits) Circuit(name string) *Circuit {
	cs.mu.RLock()
	c, ok := cs.byName[name]
	cs.mu.RUnlock()
	if ok {
		return c
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if c, ok := cs.byName[name]; ok {
		return c
	}
	opts := cs.opts
	if name != "" {
		if opts.Name == "" {
			opts.Name = name
		} else {
			opts.Name += " " + name
		}
	}
	c = NewCircuit(cs.origin, opts)
	cs.byName[name] = c
	return c
}

// Retain drops the circuits of partitions not in names (a master that is
// gone from the topology), so that the set does not grow with every
// failover. A dropped partition that comes back starts closed.
func (cs *Circuits) Retain(names []string) {
	keep := make(map[string]bool, len(names))
	for _, n := range names {
		keep[n] = true
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for n := range cs.byName {
		if !keep[n] {
			delete(cs.byName, n)
		}
	}
}

// PartitionState is the state of one partition's circuit.
type PartitionState struct {
	Name    string
	State   CircuitState
	LastErr string
	LastAt  time.Time
}

// States returns the state of every partition's circuit, sorted by name.
func (cs *Circuits) States() []PartitionState {
	cs.mu.RLock()
	out := make([]PartitionState, 0, len(cs.byName))
	for n, c := range cs.byName {
		st, e, at := c.State()
		out = append(out, PartitionState{Name: n, State: st, LastErr: e, LastAt: at})
	}
	cs.mu.RUnlock()
	slices.SortFunc(out, func(a, b PartitionState) int { return strings.Compare(a.Name, b.Name) })
	return out
}
