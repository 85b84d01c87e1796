package oidc

import (
	"context"
	"strconv"
	"testing"
)

// BenchmarkIntrospectCached is the path of every request but the first per
// token and TTL: an in-process hit.
func BenchmarkIntrospectCached(b *testing.B) {
	f := newFixture(b, jsonAnswer(activeClaims(t0)), func(c *Config) { c.Observer = nil })
	token := newToken(b)
	ctx := context.Background()
	if v, err := f.in.Introspect(ctx, token); err != nil || !v.Active {
		b.Fatalf("%+v, %v", v, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if v, err := f.in.Introspect(ctx, token); err != nil || !v.Active {
			b.Fatalf("%+v, %v", v, err)
		}
	}
	if n := f.p.introspected.Load(); n != 1 {
		b.Fatalf("provider asked %d times", n)
	}
}

// BenchmarkIntrospectCold is a new token each time: a round trip to a JSON
// provider on loopback, the checks and the cache writes.
func BenchmarkIntrospectCold(b *testing.B) {
	f := newFixture(b, jsonAnswer(activeClaims(t0)), func(c *Config) { c.Observer = nil })
	ctx := context.Background()
	prefix := newToken(b)
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		n++
		if v, err := f.in.Introspect(ctx, prefix+strconv.Itoa(n)); err != nil || !v.Active {
			b.Fatalf("%+v, %v", v, err)
		}
	}
}
