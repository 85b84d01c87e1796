package main

import (
	"testing"
	"time"
)

const sec = time.Second

func testBounds() bounds {
	return bounds{Stale: 6 * sec, Invalidation: 2 * sec, Recovery: 2 * sec}
}

// A user active over [1s, 10s] (disabled by a write over [10s, 10.1s]).
func disabledAt10(published bool) *model {
	m := newModel("t", 1, 1, testBounds(), func(int) int { return 0 })
	m.record(0, change{start: 1 * sec, end: 1*sec + 100*time.Millisecond, st: stActive})
	m.record(0, change{start: 10 * sec, end: 10*sec + 100*time.Millisecond, st: stInactive,
		published: published, pubEnd: 10*sec + 200*time.Millisecond})
	return m
}

func TestMayAllowStaleBound(t *testing.T) {
	m := disabledAt10(false)
	for _, c := range []struct {
		t0   time.Duration
		want bool
	}{
		{0, false},                            // before the first write began
		{1 * sec, true},                       // during the write that made it active
		{5 * sec, true},                       // active
		{16 * sec, true},                      // 5.9 s after the disable: a cached copy may serve
		{16*sec + 100*time.Millisecond, true}, // exactly at the bound
		{16*sec + 200*time.Millisecond, false},
		{30 * sec, false},
	} {
		if got := m.mayAllow(0, c.t0, c.t0+10*time.Millisecond); got != c.want {
			t.Errorf("allow at %s: mayAllow = %v, want %v", c.t0, got, c.want)
		}
	}
}

func TestMayAllowInvalidationBound(t *testing.T) {
	m := disabledAt10(true)
	// Published at 10.2 s: the bound is 12.2 s, not 16.1 s.
	if !m.mayAllow(0, 12*sec, 12*sec) {
		t.Error("allow 1.8 s after the publish: wrongful, want within the bound")
	}
	if m.mayAllow(0, 13*sec, 13*sec) {
		t.Error("allow 2.8 s after a published disable: within bounds, want wrongful")
	}
	// A check sent before the publish but answered long after is fine: its
	// decision may have used the old record.
	if !m.mayAllow(0, 10*sec, 14*sec) {
		t.Error("check sent during the write, answered later: wrongful, want within the bound")
	}
}

func TestMayAllowNeverActive(t *testing.T) {
	m := newModel("t", 2, 1, testBounds(), func(int) int { return 0 })
	m.record(0, change{start: 0, end: 1, st: stInactive})
	m.record(0, change{start: 5 * sec, end: 5 * sec, st: stWrongType})
	for _, at := range []time.Duration{0, 2 * sec, 6 * sec, 60 * sec} {
		if m.mayAllow(0, at, at) {
			t.Errorf("disabled then wrong-typed user allowed at %s: within bounds, want wrongful", at)
		}
		if m.mayAllow(1, at, at) {
			t.Errorf("never-written user allowed at %s: within bounds, want wrongful", at)
		}
	}
}

func TestMayAllowUncertainWrite(t *testing.T) {
	m := newModel("t", 1, 1, testBounds(), func(int) int { return 0 })
	m.record(0, change{start: 0, end: 1, st: stInactive})
	m.record(0, change{start: 5 * sec, end: 6 * sec, st: stUncertain}) // a failed enable
	if !m.mayAllow(0, 20*sec, 20*sec) {
		t.Error("a failed write may have landed: an allow after it must not count as wrongful")
	}
	m.record(0, change{start: 30 * sec, end: 30 * sec, st: stInactive})
	if m.mayAllow(0, 37*sec, 37*sec) {
		t.Error("allowed 7 s after a successful disable: within bounds, want wrongful")
	}
}

func TestUnexpected503(t *testing.T) {
	m := newModel("t", 3, 2, testBounds(), func(u int) int { return min(u, 1) })
	for u := range 3 {
		m.record(u, change{start: 0, end: 1, st: stActive})
	}
	m.outageStart(0, 10*sec, "killed")
	m.outageEnd(0, 12*sec)
	m.record(2, change{start: 20 * sec, end: 20 * sec, st: stWrongType})
	m.record(2, change{start: 25 * sec, end: 25 * sec, st: stActive})
	for _, c := range []struct {
		u    int
		t0   time.Duration
		want bool
	}{
		{0, 5 * sec, true},   // shard 0 healthy
		{0, 11 * sec, false}, // shard 0 out
		{0, 13 * sec, false}, // within the recovery allowance
		{0, 14*sec + time.Millisecond, true},
		{1, 11 * sec, true}, // shard 1 never failed: its users are readable
		{2, 11 * sec, true},
		{2, 22 * sec, false}, // wrong-typed
		{2, 26 * sec, false}, // restored 1 s ago
		{2, 28 * sec, true},
	} {
		if got := m.unexpected503(c.u, c.t0, c.t0+100*time.Millisecond); got != c.want {
			t.Errorf("user %d, 503 at %s: unexpected = %v, want %v", c.u, c.t0, got, c.want)
		}
	}
	// An outage still open at the end of the run excuses everything after.
	m.outageStart(1, 40*sec, "stalled")
	if m.unexpected503(1, 50*sec, 51*sec) {
		t.Error("503 during an open outage counted as unexpected")
	}
}

func TestKeySlot(t *testing.T) {
	// Values from the Redis Cluster specification and CLUSTER KEYSLOT.
	for key, want := range map[string]int{
		"123456789":            12739, // CRC16 check value 0x31C3
		"foo":                  12182,
		"somekey":              11058,
		"{user1000}.following": keySlot("user1000"),
		"foo{}{bar}":           keySlot("foo{}{bar}"), // empty tag: the whole key
	} {
		if got := keySlot(key); got != want {
			t.Errorf("keySlot(%q) = %d, want %d", key, got, want)
		}
	}
	if keySlot("foo{}{bar}") == keySlot("bar") {
		t.Error("an empty hash tag must not select the next one")
	}
}

// TestAnalyse runs the report's judgement on made-up samples: the one place
// where outcomes, phases and the SIGTERM excuse meet.
func TestAnalyse(t *testing.T) {
	pop, err := newPopulation(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	active, disabled := pop.byKind[kColdActive][0], pop.byKind[kDisabled][0]
	m := newModel("standalone", len(pop.users), 1, testBounds(), func(int) int { return 0 })
	m.record(active, change{start: 0, end: 1, st: stActive})
	m.record(disabled, change{start: 0, end: 1, st: stInactive})
	m.outageStart(0, 20*sec, "stalled")
	m.outageEnd(0, 21*sec)
	tg := &target{name: "standalone", dep: &deployment{model: m}}
	tg.stopAt.Store(int64(40 * sec))
	r := &runner{pop: pop, targets: [3]*target{tg}, logs: &logWatch{},
		phaseMarks: []phaseMark{{name: "one", start: 0}, {name: "sigterm", start: 30 * sec}}, end: 50 * sec}
	r.load = &loader{pop: pop, samples: []sample{
		{t0: 2 * sec, t1: 2 * sec, user: int32(active), out: oAllow},
		{t0: 3 * sec, t1: 3 * sec, user: int32(disabled), out: oAllow},                                 // wrongful
		{t0: 4 * sec, t1: 4 * sec, user: int32(active), out: o503},                                     // unexpected
		{t0: 22 * sec, t1: 22 * sec, user: int32(active), out: o503},                                   // excused: recovery
		{t0: 25 * sec, t1: 25 * sec, user: int32(disabled), out: oError},                               // an error
		{t0: 39 * sec, t1: 41 * sec, user: int32(active), out: o503},                                   // in flight at SIGTERM: answered
		{t0: 39 * sec, t1: 41 * sec, user: int32(active), out: oError},                                 // in flight, dropped
		{t0: 40*sec - 10*time.Millisecond, t1: 40 * sec, http: true, user: int32(active), out: oError}, // shutdown race
		{t0: 42 * sec, t1: 42 * sec, user: int32(active), out: oError},                                 // refused after the stop
	}}
	rep := r.analyse()
	one, sig := rep.rows[0], rep.rows[1]
	if one.requests != 5 || one.allow != 2 || one.wrongful != 1 || one.s503 != 2 || one.unexpected503 != 1 || one.errors != 1 {
		t.Errorf("phase one: %+v", *one)
	}
	if sig.requests != 4 || sig.inflight != 1 || sig.errors != 1 || sig.refused != 2 {
		t.Errorf("phase sigterm: %+v", *sig)
	}
	if !rep.failed || !one.failed() || !sig.failed() {
		t.Error("a wrongful allow, an unexpected 503 and a dropped check must fail the run")
	}
}
