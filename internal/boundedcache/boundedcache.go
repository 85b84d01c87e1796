// Package boundedcache is a generic, sharded, size-bounded cache with
// per-entry expiry, built for the per-request path: Get takes one shard lock,
// does one map lookup and allocates nothing.
//
// Bound. The total capacity is split across the shards (the per-shard
// capacities sum to exactly the requested capacity), so Len never exceeds
// capacity. Because keys hash unevenly, a shard can fill up and evict while
// the cache as a whole holds fewer than capacity entries: the bound is exact,
// the usable size is approximate.
//
// Eviction. When a new key lands in a full shard, a CLOCK hand sweeps the
// shard's entries: the first entry that is expired, or has not been read since
// the hand last passed it, is replaced. Every Get of a live entry sets its
// "referenced" bit, so hot entries survive and one-shot entries go first. Each
// bit cleared by the hand was paid for by an earlier Get, which makes eviction
// O(1) amortised.
//
// Expired entries are not removed by Get: Peek still returns them (callers
// use that to serve a stale entry while their origin is down), and they are
// the first victims when room is needed.
//
// Index. A shard finds a key's slot through a map from the key's 64-bit hash
// (the one that chose the shard; the seed is random per cache) to the slot,
// and the slot holds the key itself, which decides. The map holds no
// pointers, so the GC never scans it, and its entries take 16 bytes whatever
// the key: 40 for a 32-byte key before. Two keys of one shard whose hashes
// collide (for a full 100 000-entry cache, about 4 chances in 10^12) cannot
// both be cached: the later one replaces the earlier, which is an eviction,
// never a wrong answer.
package boundedcache

import (
	"hash/maphash"
	"sync"
	"time"
)

const (
	// maxShards bounds lock striping; 64 shards keep 64 goroutines on a
	// handful of cores from meeting on one mutex.
	maxShards = 64
	// minPerShard keeps small caches from being split into shards so tiny
	// that a hot key is evicted by the first collision.
	minPerShard = 32
)

// Cache is a sharded, bounded map from K to V where every entry carries an
// expiry time. The zero value is not usable; call New. All methods are safe
// for concurrent use.
type Cache[K comparable, V any] struct {
	seed   maphash.Seed
	mask   uint64
	shards []shard[K, V]
	// sum hashes a key with seed; tests replace it to force collisions.
	sum func(maphash.Seed, K) uint64
	// epoch is the origin of the entries' times. An entry keeps its times as
	// offsets from it: 8 bytes each instead of a time.Time's 24, which for a
	// small value is half the entry. time.Time.Sub also keeps the monotonic
	// clock in the comparison when both times carry it (a wall-clock step
	// neither extends nor cuts a TTL) and saturates instead of overflowing.
	epoch time.Time
}

// entry is laid out key, times, value, flag so that small values pack:
// a string key with a one-byte value takes 40 bytes, a 32-byte key with a
// pointer value 64.
type entry[K comparable, V any] struct {
	key     K
	expires time.Duration // since Cache.epoch
	stored  time.Duration // since Cache.epoch
	val     V
	ref     bool // read since the CLOCK hand last passed
}

type shard[K comparable, V any] struct {
	mu    sync.Mutex
	cap   int
	index map[uint64]int32 // key hash -> position in slots
	slots []entry[K, V]
	hand  int
	// Keep neighbouring shards' mutexes off each other's cache line.
	_ [64]byte
}

// New returns a cache holding at most capacity entries. A capacity below 1 is
// treated as 1.
func New[K comparable, V any](capacity int) *Cache[K, V] {
	if capacity < 1 {
		capacity = 1
	}
	n := 1
	for n*2 <= maxShards && n*2*minPerShard <= capacity {
		n *= 2
	}
	c := &Cache[K, V]{
		seed:   maphash.MakeSeed(),
		mask:   uint64(n - 1),
		shards: make([]shard[K, V], n),
		epoch:  time.Now(),
		sum:    maphash.Comparable[K],
	}
	base, extra := capacity/n, capacity%n
	for i := range c.shards {
		s := &c.shards[i]
		s.cap = base
		if i < extra {
			s.cap++
		}
		// Maps and slots grow on demand: a large, mostly empty cache costs
		// little memory.
		s.index = make(map[uint64]int32)
	}
	return c
}

// locate returns key's hash and shard.
func (c *Cache[K, V]) locate(key K) (uint64, *shard[K, V]) {
	h := c.sum(c.seed, key)
	return h, &c.shards[h&c.mask]
}

// find returns the position of key in s, if it is there. The caller holds
// s.mu.
func (s *shard[K, V]) find(h uint64, key K) (int, bool) {
	i, ok := s.index[h]
	if !ok || s.slots[i].key != key {
		return 0, false
	}
	return int(i), true
}

// Get returns the value stored for key if it has not expired at now (an entry
// is expired when now >= its expiry).
func (c *Cache[K, V]) Get(key K, now time.Time) (V, bool) {
	h, s := c.locate(key)
	s.mu.Lock()
	i, ok := s.find(h, key)
	if !ok {
		s.mu.Unlock()
		var zero V
		return zero, false
	}
	e := &s.slots[i]
	if now.Sub(c.epoch) >= e.expires {
		s.mu.Unlock()
		var zero V
		return zero, false
	}
	e.ref = true
	v := e.val
	s.mu.Unlock()
	return v, true
}

// Peek returns the entry stored for key whether or not it has expired, with
// its expiry and the time it was stored. It does not mark the entry as used.
func (c *Cache[K, V]) Peek(key K) (v V, expires, stored time.Time, ok bool) {
	h, s := c.locate(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.find(h, key)
	if !ok {
		return v, expires, stored, false
	}
	e := &s.slots[i]
	return e.val, c.epoch.Add(e.expires), c.epoch.Add(e.stored), true
}

// Set stores v for key, stored at now and valid until expires. If the key's
// shard is full, an expired or not recently read entry is evicted.
func (c *Cache[K, V]) Set(key K, v V, now, expires time.Time) {
	e := entry[K, V]{key: key, val: v, expires: expires.Sub(c.epoch), stored: now.Sub(c.epoch)}
	at := e.stored
	h, s := c.locate(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if i, ok := s.index[h]; ok {
		// The same key, refreshed; or, rarely, another key with the same
		// hash, which this one evicts.
		e.ref = s.slots[i].key == key
		s.slots[i] = e
		return
	}
	if len(s.slots) < s.cap {
		if len(s.slots) == cap(s.slots) {
			s.grow()
		}
		s.index[h] = int32(len(s.slots))
		s.slots = append(s.slots, e)
		return
	}
	i := s.victim(at)
	delete(s.index, c.sum(c.seed, s.slots[i].key))
	s.slots[i] = e
	s.index[h] = int32(i)
}

// grow adds a quarter to the slots' capacity, never going past the
// shard's: append's doubling would leave up to half of a shard's slot memory
// unused for good (a shard of a 100 000-entry cache holding 156 entries
// would have 256 slots). Growing by a quarter wastes at most a fifth, for a
// few more copies while the cache fills.
func (s *shard[K, V]) grow() {
	n := min(max(cap(s.slots)+cap(s.slots)/4, 8), s.cap)
	slots := make([]entry[K, V], len(s.slots), n)
	copy(slots, s.slots)
	s.slots = slots
}

// victim runs the CLOCK hand until it finds an entry to replace. It stops
// within two sweeps: the first clears every reference bit it passes.
// now is an offset from the cache's epoch. The caller holds s.mu and the
// shard is full (len(slots) == cap >= 1).
func (s *shard[K, V]) victim(now time.Duration) int {
	for {
		if s.hand >= len(s.slots) {
			s.hand = 0
		}
		i := s.hand
		s.hand++
		e := &s.slots[i]
		if !e.ref || now >= e.expires {
			return i
		}
		e.ref = false
	}
}

// Delete removes key if present.
func (c *Cache[K, V]) Delete(key K) {
	h, s := c.locate(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.find(h, key)
	if !ok {
		return
	}
	delete(s.index, h)
	last := len(s.slots) - 1
	if i != last {
		s.slots[i] = s.slots[last]
		s.index[c.sum(c.seed, s.slots[i].key)] = int32(i)
	}
	// Zero the vacated slot so the GC can reclaim what it referenced.
	s.slots[last] = entry[K, V]{}
	s.slots = s.slots[:last]
}

// Purge removes every entry.
func (c *Cache[K, V]) Purge() {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		clear(s.index)
		clear(s.slots)
		s.slots = s.slots[:0]
		s.hand = 0
		s.mu.Unlock()
	}
}

// Len returns the number of entries, expired ones included. Shards are
// counted one after the other, so under concurrent writes the result is a
// snapshot of no single instant.
func (c *Cache[K, V]) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.slots)
		s.mu.Unlock()
	}
	return n
}
