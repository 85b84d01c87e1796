package cachebound

import "testing"

// TestMillionUsersStayWithinBound looks up a million distinct users (fewer
// under the race detector, which makes each lookup far slower) through a
// cache of 100 000 entries: the cache must never hold more than its size,
// and its heap must be that of about size entries, not of every user seen.
func TestMillionUsersStayWithinBound(t *testing.T) {
	users, size := 1_000_000, 100_000
	if raceEnabled || testing.Short() {
		users, size = 100_000, 10_000
	}
	res, err := Run(t.Context(), users, size)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d users, size %d: %d entries, heap %.1f MiB (%.0f B/entry)", res.Users, res.Size, res.Len, res.HeapMiB, res.BytesPerEntry)
	if res.Len > res.Bound {
		t.Fatalf("cache holds %d entries, bound %d", res.Len, res.Bound)
	}
	if res.Len < res.Bound/2 {
		t.Fatalf("cache holds %d entries of %d: eviction too eager", res.Len, res.Bound)
	}
	// A generous per-entry budget: what matters is that the heap follows the
	// bound, not the number of users seen (which would be 5 to 10 times more).
	const maxBytesPerBound = 512
	if limit := float64(res.Bound*maxBytesPerBound) / (1 << 20); res.HeapMiB > limit {
		t.Fatalf("heap grew %.1f MiB for a cache bounded at %d entries (limit %.1f MiB)", res.HeapMiB, res.Bound, limit)
	}
}
