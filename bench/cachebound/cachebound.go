// Package cachebound shows that gatehouse's in-process user cache stays
// within its configured bound however many distinct users it sees: it looks
// up many distinct users through a userstore.Cache of a given size and
// reports the number of entries held and the heap they take.
//
// The load benchmark (bench/load) reports its figures, and a test keeps the
// bound checked in `make test`.
package cachebound

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"

	"github.com/gatehouse-authz/gatehouse/userstore"
)

// Result is what one Run saw.
type Result struct {
	// Users is how many distinct users were looked up.
	Users int `json:"users"`
	// Size is the configured cache size; Bound the most entries it may hold
	// (users and applications have a cache each, so 2*Size in all, and
	// Size for users alone).
	Size  int `json:"size"`
	Bound int `json:"bound"`
	// Len is how many entries the cache held at the end.
	Len int `json:"len"`
	// HeapMiB is the live heap growth after the lookups, with the cache
	// still reachable, after a GC; BytesPerEntry is HeapMiB over Len.
	HeapMiB       float64 `json:"heap_mib"`
	BytesPerEntry float64 `json:"bytes_per_entry"`
}

// activeOrigin answers Active for every id, like a directory where every
// user exists.
type activeOrigin struct{}

func (activeOrigin) Lookup(context.Context, userstore.Kind, string) (userstore.Status, error) {
	return userstore.Active, nil
}

// UserID returns the i-th distinct user id, a canonical UUID.
func UserID(i int) string {
	return fmt.Sprintf("%08x-5a5a-4b4b-8c8c-%012x", i, i)
}

// Run looks up users distinct users through a userstore.Cache of the given
// size and reports what it holds.
func Run(ctx context.Context, users, size int) (Result, error) {
	res := Result{Users: users, Size: size, Bound: size}
	before := liveHeap()
	c := userstore.NewCache(activeOrigin{}, userstore.CacheOptions{
		Size:   size,
		Logger: slog.New(slog.DiscardHandler),
	})
	for i := range users {
		st, err := c.Lookup(ctx, userstore.User, UserID(i))
		if err != nil {
			return res, fmt.Errorf("lookup %d: %w", i, err)
		}
		if st != userstore.Active {
			return res, fmt.Errorf("lookup %d: got %s, want active", i, st)
		}
	}
	res.Len = c.Len()
	after := liveHeap()
	runtime.KeepAlive(c)
	if after > before {
		res.HeapMiB = float64(after-before) / (1 << 20)
		if res.Len > 0 {
			res.BytesPerEntry = float64(after-before) / float64(res.Len)
		}
	}
	return res, nil
}

// liveHeap returns the heap in use after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
