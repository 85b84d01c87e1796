package userstore

import (
	"context"
	"errors"
	"testing"
)

type panickingOrigin struct{}

func (panickingOrigin) Lookup(context.Context, Kind, string) (Status, error) { panic("origin bug") }
func (panickingOrigin) UserBySub(context.Context, string) (string, bool, error) {
	panic("origin bug")
}

// TestOriginPanicIsAnError: a panic in an origin lookup, which runs in a
// goroutine of singleflight's where no one could recover it, is that
// lookup's error (a deny or a 503 upstream), not the end of the process,
// and nothing is cached.
func TestOriginPanicIsAnError(t *testing.T) {
	c := NewCache(panickingOrigin{}, CacheOptions{})
	for range 2 {
		st, err := c.Lookup(context.Background(), User, "u1")
		if err == nil || st != NotFound || !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Lookup: %v, %v; want NotFound and an ErrUnavailable error", st, err)
		}
	}
	s := NewSubjectCache(panickingOrigin{}, SubjectCacheOptions{})
	if id, found, err := s.UserBySub(context.Background(), "sub"); err == nil || found || id != "" {
		t.Fatalf("UserBySub: %q %v %v; want an error", id, found, err)
	}
	if c.Len() != 0 || s.Len() != 0 {
		t.Fatalf("a panic was cached: %d, %d entries", c.Len(), s.Len())
	}
}
