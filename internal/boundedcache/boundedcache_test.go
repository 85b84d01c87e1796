package boundedcache

import (
	"fmt"
	"hash/maphash"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestGetSetExpiry(t *testing.T) {
	c := New[string, int](100)
	if _, ok := c.Get("a", t0); ok {
		t.Fatal("Get on empty cache reported a hit")
	}
	c.Set("a", 1, t0, t0.Add(10*time.Second))
	if v, ok := c.Get("a", t0.Add(9*time.Second)); !ok || v != 1 {
		t.Fatalf("Get before expiry = %v, %v; want 1, true", v, ok)
	}
	// now == expires is already expired.
	if _, ok := c.Get("a", t0.Add(10*time.Second)); ok {
		t.Fatal("Get at expiry reported a hit")
	}
	if _, ok := c.Get("a", t0.Add(time.Hour)); ok {
		t.Fatal("Get after expiry reported a hit")
	}
	// Expired entries stay visible to Peek with their timestamps.
	v, exp, stored, ok := c.Peek("a")
	if !ok || v != 1 || !exp.Equal(t0.Add(10*time.Second)) || !stored.Equal(t0) {
		t.Fatalf("Peek = %v, %v, %v, %v", v, exp, stored, ok)
	}
	if c.Len() != 1 {
		t.Fatalf("Len = %d, want 1", c.Len())
	}
}

func TestOverwrite(t *testing.T) {
	c := New[string, int](10)
	c.Set("a", 1, t0, t0.Add(time.Second))
	c.Set("a", 2, t0.Add(time.Second), t0.Add(time.Minute))
	if v, ok := c.Get("a", t0.Add(30*time.Second)); !ok || v != 2 {
		t.Fatalf("Get = %v, %v; want 2, true", v, ok)
	}
	if _, _, stored, _ := c.Peek("a"); !stored.Equal(t0.Add(time.Second)) {
		t.Fatalf("stored = %v, want the second Set's now", stored)
	}
	if c.Len() != 1 {
		t.Fatalf("Len = %d, want 1", c.Len())
	}
}

func TestDeleteAndPurge(t *testing.T) {
	c := New[int, int](1000)
	for i := range 100 {
		c.Set(i, i, t0, t0.Add(time.Hour))
	}
	for i := 0; i < 100; i += 2 {
		c.Delete(i)
	}
	c.Delete(12345) // absent: no-op
	if c.Len() != 50 {
		t.Fatalf("Len after deletes = %d, want 50", c.Len())
	}
	// Swap-remove must keep every surviving index right.
	for i := range 100 {
		v, ok := c.Get(i, t0)
		if want := i%2 == 1; ok != want || (ok && v != i) {
			t.Fatalf("Get(%d) = %v, %v; want present=%v", i, v, ok, want)
		}
	}
	c.Purge()
	if c.Len() != 0 {
		t.Fatalf("Len after Purge = %d", c.Len())
	}
	if _, _, _, ok := c.Peek(1); ok {
		t.Fatal("Peek found an entry after Purge")
	}
	// Usable after Purge.
	c.Set(7, 7, t0, t0.Add(time.Hour))
	if v, ok := c.Get(7, t0); !ok || v != 7 {
		t.Fatalf("Get after Purge+Set = %v, %v", v, ok)
	}
}

func TestCapacityBelowOne(t *testing.T) {
	for _, capacity := range []int{0, -5} {
		c := New[string, int](capacity)
		c.Set("a", 1, t0, t0.Add(time.Hour))
		c.Set("b", 2, t0, t0.Add(time.Hour))
		if c.Len() != 1 {
			t.Fatalf("capacity %d: Len = %d, want 1", capacity, c.Len())
		}
		if v, ok := c.Get("b", t0); !ok || v != 2 {
			t.Fatalf("capacity %d: latest Set not readable: %v, %v", capacity, v, ok)
		}
	}
}

func TestBoundWithMillionKeys(t *testing.T) {
	const capacity = 10_000
	c := New[string, int](capacity)
	for i := range 1_000_000 {
		c.Set(strconv.Itoa(i), i, t0, t0.Add(time.Hour))
		if i%100_000 == 0 && c.Len() > capacity {
			t.Fatalf("after %d inserts Len = %d > %d", i+1, c.Len(), capacity)
		}
	}
	n := c.Len()
	if n > capacity {
		t.Fatalf("Len = %d > capacity %d", n, capacity)
	}
	// The shards are full, so the cache is close to its bound, not far below.
	if n < capacity*9/10 {
		t.Fatalf("Len = %d, expected the cache to be nearly full (%d)", n, capacity)
	}
	// Memory follows the bound, not the number of keys ever inserted: a
	// million live entries would take well over 100 MB.
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if ms.HeapAlloc > 32<<20 {
		t.Fatalf("heap = %d MB after 1e6 inserts into a %d-entry cache", ms.HeapAlloc>>20, capacity)
	}
	t.Logf("heap after 1e6 inserts: %.1f MB", float64(ms.HeapAlloc)/(1<<20))
	runtime.KeepAlive(c)
	checkIndex(t, c)
}

// checkIndex: every index entry points at a slot holding a key of that hash,
// in the shard the hash chooses, and counts agree.
func checkIndex[K comparable, V any](t *testing.T, c *Cache[K, V]) {
	t.Helper()
	for i := range c.shards {
		s := &c.shards[i]
		if len(s.index) != len(s.slots) || len(s.slots) > s.cap {
			t.Fatalf("shard %d: index %d, slots %d, cap %d", i, len(s.index), len(s.slots), s.cap)
		}
		for h, j := range s.index {
			if got := c.sum(c.seed, s.slots[j].key); got != h || h&c.mask != uint64(i) {
				t.Fatalf("shard %d: index[%#x]=%d holds %v, whose hash is %#x", i, h, j, s.slots[j].key, got)
			}
		}
	}
}

// TestHashCollisions: keys whose hashes collide evict each other and are
// never answered for one another. The hash is forced to key%7, so most keys
// collide; the cache is checked against a plain map after every step.
func TestHashCollisions(t *testing.T) {
	c := New[int, int](1000)
	c.sum = func(_ maphash.Seed, k int) uint64 { return uint64(k % 7) }
	model := map[int]int{} // what was last stored for each key
	for step := range 5000 {
		k := (step * 7919) % 101
		switch step % 5 {
		case 0, 1, 2:
			c.Set(k, step, t0, t0.Add(time.Hour))
			model[k] = step
		case 3:
			c.Delete(k)
			delete(model, k)
		}
		for q := range 101 {
			if v, ok := c.Get(q, t0); ok {
				if want, stored := model[q]; !stored || v != want {
					t.Fatalf("step %d: Get(%d) = %d, but it holds %d (stored: %v)", step, q, v, want, stored)
				}
			}
		}
		checkIndex(t, c)
	}
	// With every hash colliding, the cache holds one key per hash value.
	if n := c.Len(); n > 7 {
		t.Fatalf("Len = %d with 7 distinct hashes", n)
	}
	// The last key stored for a hash is served.
	c.Set(3, 33, t0, t0.Add(time.Hour))
	if v, ok := c.Get(3, t0); !ok || v != 33 {
		t.Fatalf("Get(3) = %d, %v after Set(3, 33)", v, ok)
	}
	if _, ok := c.Get(10, t0); ok {
		t.Fatal("Get(10) hit although 3, with the same hash, was stored after it")
	}
}

func TestShardCapacitiesSumToCapacity(t *testing.T) {
	for _, capacity := range []int{1, 2, 31, 32, 63, 64, 100, 1000, 2047, 10_000, 100_000} {
		c := New[int, int](capacity)
		sum := 0
		for i := range c.shards {
			if c.shards[i].cap < 1 {
				t.Fatalf("capacity %d: shard %d has cap %d", capacity, i, c.shards[i].cap)
			}
			sum += c.shards[i].cap
		}
		if sum != capacity {
			t.Fatalf("capacity %d: shard caps sum to %d", capacity, sum)
		}
		if len(c.shards) > maxShards || len(c.shards)&(len(c.shards)-1) != 0 {
			t.Fatalf("capacity %d: %d shards", capacity, len(c.shards))
		}
	}
}

// TestSlotsNeverOutgrowShard: a shard's slots are allocated up to its
// capacity and no further, so a full cache holds no unused slot memory.
func TestSlotsNeverOutgrowShard(t *testing.T) {
	for _, capacity := range []int{1, 7, 100, 10_000, 100_003} {
		c := New[int, int](capacity)
		for i := range 3 * capacity {
			c.Set(i, i, t0, t0.Add(time.Hour))
		}
		slots := 0
		for i := range c.shards {
			s := &c.shards[i]
			if cap(s.slots) > s.cap {
				t.Fatalf("capacity %d: shard %d has %d slots allocated for a capacity of %d", capacity, i, cap(s.slots), s.cap)
			}
			slots += cap(s.slots)
		}
		if slots != capacity {
			t.Fatalf("capacity %d: %d slots allocated when full", capacity, slots)
		}
	}
}

// TestSlotsGrowByAQuarter: a cache filled to a tenth of its capacity holds
// at most a quarter more slots than entries in any shard (plus the first 8).
func TestSlotsGrowByAQuarter(t *testing.T) {
	c := New[int, int](100_000)
	for i := range 10_000 {
		c.Set(i, i, t0, t0.Add(time.Hour))
	}
	for i := range c.shards {
		s := &c.shards[i]
		if n := len(s.slots); cap(s.slots) > n+n/4+8 {
			t.Fatalf("shard %d: %d slots allocated for %d entries", i, cap(s.slots), n)
		}
	}
}

// TestExtremeTimes: expiry times far from the cache's creation, either way,
// neither overflow nor wrap around.
func TestExtremeTimes(t *testing.T) {
	c := New[string, int](10)
	far := time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
	c.Set("forever", 1, t0, far)
	if _, ok := c.Get("forever", t0.Add(100*365*24*time.Hour)); !ok {
		t.Fatal("an entry valid until year 9999 expired within a century")
	}
	past := time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	c.Set("never", 1, t0, past)
	if _, ok := c.Get("never", t0); ok {
		t.Fatal("an entry that expired in year 1 is served")
	}
}

func TestEvictionPrefersExpired(t *testing.T) {
	// capacity below minPerShard gives one shard, so eviction is observable.
	c := New[string, int](4)
	c.Set("old", 0, t0, t0.Add(time.Second)) // will be expired
	for i := 1; i < 4; i++ {
		k := fmt.Sprint(i)
		c.Set(k, i, t0, t0.Add(time.Hour))
		c.Get(k, t0) // referenced: CLOCK would spare them
	}
	now := t0.Add(time.Minute)
	c.Set("new", 9, now, now.Add(time.Hour))
	if _, _, _, ok := c.Peek("old"); ok {
		t.Fatal("expired entry survived eviction")
	}
	for _, k := range []string{"1", "2", "3", "new"} {
		if _, ok := c.Get(k, now); !ok {
			t.Fatalf("live entry %q was evicted instead of the expired one", k)
		}
	}
}

func TestEvictionSparesRecentlyRead(t *testing.T) {
	c := New[int, int](8)
	exp := t0.Add(time.Hour)
	for i := range 8 {
		c.Set(i, i, t0, exp)
	}
	// Keep reading key 0 while 100 one-shot keys stream through.
	for i := 100; i < 200; i++ {
		if _, ok := c.Get(0, t0); !ok {
			t.Fatalf("hot key evicted after %d one-shot inserts", i-100)
		}
		c.Set(i, i, t0, exp)
	}
	if c.Len() != 8 {
		t.Fatalf("Len = %d, want 8", c.Len())
	}
}

func TestGetZeroAllocs(t *testing.T) {
	type key struct {
		kind uint8
		id   string
	}
	c := New[key, int](100_000)
	k := key{1, "3f2504e0-4f89-11d3-9a0c-0305e82c3301"}
	c.Set(k, 1, t0, t0.Add(time.Hour))
	miss := key{1, "nope"}
	allocs := testing.AllocsPerRun(1000, func() {
		if _, ok := c.Get(k, t0); !ok {
			t.Fatal("miss")
		}
		c.Get(miss, t0)
	})
	if allocs != 0 {
		t.Fatalf("Get allocates %v times per run, want 0", allocs)
	}
}

func TestConcurrentUse(t *testing.T) {
	// Run under -race: mixes every operation on overlapping keys.
	c := New[int, int](256)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5000 {
				k := (g*7 + i) % 1000
				now := t0.Add(time.Duration(i) * time.Millisecond)
				switch i % 7 {
				case 0:
					c.Delete(k)
				case 1:
					c.Peek(k)
				case 2, 3:
					c.Set(k, i, now, now.Add(time.Second))
				default:
					if v, ok := c.Get(k, now); ok && v < 0 {
						t.Errorf("impossible value %d", v)
					}
				}
				if i == 2500 && g == 0 {
					c.Purge()
				}
			}
		}()
	}
	wg.Wait()
	if n := c.Len(); n > 256 {
		t.Fatalf("Len = %d > 256", n)
	}
}

type benchKey struct {
	kind uint8
	id   string
}

func BenchmarkGetHit(b *testing.B) {
	c := New[benchKey, int](100_000)
	k := benchKey{1, "3f2504e0-4f89-11d3-9a0c-0305e82c3301"}
	c.Set(k, 1, t0, t0.Add(time.Hour))
	b.ReportAllocs()
	for b.Loop() {
		c.Get(k, t0)
	}
}

func BenchmarkSet(b *testing.B) {
	const n = 1 << 16
	keys := make([]benchKey, n)
	for i := range keys {
		keys[i] = benchKey{1, strconv.Itoa(i)}
	}
	c := New[benchKey, int](n / 2) // half the keys: exercises eviction too
	exp := t0.Add(time.Hour)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.Set(keys[i&(n-1)], i, t0, exp)
		i++
	}
}

func BenchmarkGetParallel(b *testing.B) {
	const n = 1024
	keys := make([]benchKey, n)
	c := New[benchKey, int](100_000)
	for i := range keys {
		keys[i] = benchKey{1, fmt.Sprintf("user-%04d", i)}
		c.Set(keys[i], i, t0, t0.Add(time.Hour))
	}
	b.ReportAllocs()
	b.SetParallelism(32) // 32 × GOMAXPROCS goroutines
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			c.Get(keys[i&(n-1)], t0)
			i++
		}
	})
}

func BenchmarkGetHitStringKey(b *testing.B) {
	c := New[string, int](100_000)
	k := "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
	c.Set(k, 1, t0, t0.Add(time.Hour))
	b.ReportAllocs()
	for b.Loop() {
		c.Get(k, t0)
	}
}
