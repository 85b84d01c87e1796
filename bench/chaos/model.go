package main

import (
	"math"
	"sync"
	"time"
)

// forever closes an interval that is still open when the run ends.
const forever = time.Duration(math.MaxInt64)

// recState is what one user's record in one deployment's directory holds.
type recState uint8

const (
	// stMissing: no key (gatehouse answers "User not found.").
	stMissing recState = iota
	// stActive: a hash with active=1.
	stActive
	// stInactive: a hash with active=0.
	stInactive
	// stWrongType: the key holds a string, list, set or sorted set.
	stWrongType
	// stUncertain: a write failed, so it may or may not have been applied
	// (a timed-out write can still land later). Until the next successful
	// write of the record, the oracle assumes both the old and the new
	// state, and that the record may be unreadable.
	stUncertain
)

func (s recState) String() string {
	switch s {
	case stActive:
		return "active"
	case stInactive:
		return "inactive"
	case stWrongType:
		return "wrong-typed"
	case stUncertain:
		return "uncertain"
	default:
		return "missing"
	}
}

// change is one write of a record: over [start, end] (the write call as the
// driver saw it) the record may hold the old or the new state; after end it
// holds the new one. When the writer also published the invalidation message,
// published is set and pubEnd is when PUBLISH returned.
type change struct {
	start, end time.Duration
	st         recState
	published  bool
	pubEnd     time.Duration
}

// outage is a span during which a shard of the deployment could not answer
// (stalled, killed, failing over), from just before the driver acted to when
// it saw the shard answer again; to is forever while it lasts.
type outage struct {
	from, to time.Duration
	what     string
}

// bounds are the documented limits within which gatehouse may answer from
// its cache what the directory no longer says.
type bounds struct {
	// Stale: an allow is rightful when the user was active at most this long
	// before the request: max(GATEHOUSE_CACHE_TTL,
	// GATEHOUSE_CACHE_STALE_IF_ERROR) plus a scheduling slack.
	Stale time.Duration
	// Invalidation: after a change published on the invalidation channel has
	// been acknowledged by PUBLISH, a request sent this much later must see
	// it. It covers the message's delivery and, when the subscription was
	// being re-established, the listener's one-second retry and the purge
	// that follows it.
	Invalidation time.Duration
	// Recovery: a 503 is excused while the user's record cannot be read and
	// this long after it can again (circuit cooldown of 1 s, reconnection,
	// slack).
	Recovery time.Duration
}

// model records, for one deployment, what the directory said and when: every
// record write and every outage. The driver writes it while the run goes on;
// the oracle reads it after the load has stopped.
type model struct {
	name    string
	b       bounds
	shardOf []int // user index -> shard (0 unless Cluster)

	mu      sync.Mutex
	changes [][]change // per user, in time order
	outages [][]outage // per shard
}

func newModel(name string, users, shards int, b bounds, shardOf func(u int) int) *model {
	m := &model{name: name, b: b, shardOf: make([]int, users),
		changes: make([][]change, users), outages: make([][]outage, shards)}
	for u := range users {
		m.shardOf[u] = shardOf(u)
	}
	return m
}

// record appends a change of user u.
func (m *model) record(u int, c change) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.changes[u] = append(m.changes[u], c)
}

// outageStart opens an outage of shard at t. Call it before acting.
func (m *model) outageStart(shard int, t time.Duration, what string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.outages[shard] = append(m.outages[shard], outage{from: t, to: forever, what: what})
}

// outageEnd closes the open outage of shard at t. Call it once the shard
// has been seen answering.
func (m *model) outageEnd(shard int, t time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.outages[shard]
	if n := len(o); n > 0 && o[n-1].to == forever {
		o[n-1].to = t
	}
}

// stateAt returns the state u's record is known to hold at t, and false when
// a write was in progress then.
func (m *model) stateAt(u int, t time.Duration) (recState, bool) {
	st := stMissing
	for _, c := range m.changes[u] {
		if c.start > t {
			break
		}
		if c.end > t {
			return c.st, false
		}
		st = c.st
	}
	return st, true
}

// mayAllow reports whether an allow for user u, asked at t0 and answered at
// t1, is within the documented bounds: some time s with
// t0 - bound <= s <= t1 at which u's record may have been active, where
// bound is b.Stale, or shorter (b.Invalidation after the PUBLISH) when the
// change that ended the active state was published.
func (m *model) mayAllow(u int, t0, t1 time.Duration) bool {
	ch := m.changes[u]
	for i, c := range ch {
		if c.start > t1 {
			return false
		}
		if c.st != stActive && c.st != stUncertain {
			continue
		}
		// Possibly active from the start of this write to the end of the
		// next one; a cached copy may be served for a bound after that.
		grace := forever
		if i+1 < len(ch) {
			next := ch[i+1]
			grace = next.end + m.b.Stale
			if next.published && next.st != stActive && next.st != stUncertain {
				grace = min(grace, next.pubEnd+m.b.Invalidation)
			}
		}
		if grace >= t0 {
			return true
		}
	}
	return false
}

// lastActiveEnd returns when u's record last stopped being possibly active
// before t (-1 if it never was), for the report.
func (m *model) lastActiveEnd(u int, t time.Duration) time.Duration {
	last := time.Duration(-1)
	ch := m.changes[u]
	for i, c := range ch {
		if c.start > t {
			break
		}
		if c.st != stActive && c.st != stUncertain {
			continue
		}
		if i+1 < len(ch) {
			last = ch[i+1].end
		} else {
			last = forever
		}
	}
	return last
}

// mayBeUnreadable reports whether, at some time in [a, b], u's record may
// not have been readable: its shard was out, or the record was wrong-typed
// or in doubt. A record that is missing, active or inactive on a shard that
// answers is readable: gatehouse owes a definite answer for it.
func (m *model) mayBeUnreadable(u int, a, b time.Duration) bool {
	for _, o := range m.outages[m.shardOf[u]] {
		if o.from <= b && o.to >= a {
			return true
		}
	}
	ch := m.changes[u]
	for i, c := range ch {
		if c.start > b {
			break
		}
		if c.st != stWrongType && c.st != stUncertain {
			continue
		}
		to := forever
		if i+1 < len(ch) {
			to = ch[i+1].end
		}
		if to >= a {
			return true
		}
	}
	return false
}

// lastUnreadableEnd returns when u's record last became readable again
// before t: the end of its shard's last outage or of its last wrong-typed or
// doubtful spell; -1 if it never was unreadable.
func (m *model) lastUnreadableEnd(u int, t time.Duration) time.Duration {
	last := time.Duration(-1)
	for _, o := range m.outages[m.shardOf[u]] {
		if o.to <= t {
			last = max(last, o.to)
		}
	}
	ch := m.changes[u]
	for i, c := range ch {
		if (c.st == stWrongType || c.st == stUncertain) && i+1 < len(ch) && ch[i+1].end <= t {
			last = max(last, ch[i+1].end)
		}
	}
	return last
}

// unexpected503 reports whether a 503 for u, asked at t0 and answered at t1,
// is not excused: u's record was readable from b.Recovery before t0 to t1.
func (m *model) unexpected503(u int, t0, t1 time.Duration) bool {
	return !m.mayBeUnreadable(u, t0-m.b.Recovery, t1)
}
