package authz

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse-authz/gatehouse/userstore"
)

// mapDir is a lock-free read-only directory: it stands for a warm in-process
// cache so the benchmarks measure the decision core alone.
type mapDir map[string]userstore.Status

func (m mapDir) Lookup(_ context.Context, _ userstore.Kind, id string) (userstore.Status, error) {
	return m[id], nil
}

func benchAuthorizer(b *testing.B, cacheSize int) *Authorizer {
	b.Helper()
	a, err := New(Options{
		JWT:            testConfig(),
		Directory:      mapDir{activeUser: userstore.Active},
		TokenCacheSize: cacheSize,
		Now:            func() time.Time { return testNow },
	})
	if err != nil {
		b.Fatal(err)
	}
	return a
}

// BenchmarkDecide/cached-token: a token seen before, user cached (budget:
// under 2 µs and 10 allocations). first-seen: full verification.
func BenchmarkDecide(b *testing.B) {
	ctx := context.Background()
	req := &Request{Method: "GET", Path: "/external-api/v1.0/rooms/", Authorization: "Bearer " + sign(b, meetClaims())}
	b.Run("cached-token", func(b *testing.B) {
		a := benchAuthorizer(b, 0)
		b.ReportAllocs()
		for b.Loop() {
			if d := a.Decide(ctx, req); !d.Allowed() {
				b.Fatal(d.Message)
			}
		}
	})
	b.Run("first-seen-token", func(b *testing.B) {
		a := benchAuthorizer(b, -1)
		b.ReportAllocs()
		for b.Loop() {
			if d := a.Decide(ctx, req); !d.Allowed() {
				b.Fatal(d.Message)
			}
		}
	})
	b.Run("cached-token-parallel", func(b *testing.B) {
		a := benchAuthorizer(b, 0)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if d := a.Decide(ctx, req); !d.Allowed() {
					b.Error(d.Message)
					return
				}
			}
		})
	})
	b.Run("bad-signature", func(b *testing.B) {
		a := benchAuthorizer(b, 0)
		bad := &Request{Authorization: req.Authorization[:len(req.Authorization)-4] + "AAAA"}
		b.ReportAllocs()
		for b.Loop() {
			if d := a.Decide(ctx, bad); d.Reason != ReasonInvalidToken {
				b.Fatal(d.Message)
			}
		}
	})
	b.Run("garbage", func(b *testing.B) {
		a := benchAuthorizer(b, 0)
		bad := &Request{Authorization: "Bearer not-a-token"}
		b.ReportAllocs()
		for b.Loop() {
			if d := a.Decide(ctx, bad); d.Reason != ReasonInvalidToken {
				b.Fatal(d.Message)
			}
		}
	})
	b.Run("distinct-tokens", func(b *testing.B) {
		a := benchAuthorizer(b, 0)
		reqs := make([]*Request, 1024)
		for i := range reqs {
			reqs[i] = &Request{Authorization: "Bearer " + sign(b, with(meetClaims(), "jti", fmt.Sprint(i)))}
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if d := a.Decide(ctx, reqs[i%len(reqs)]); !d.Allowed() {
				b.Fatal(d.Message)
			}
			i++
		}
	})
}

func BenchmarkNormalizeUUID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := NormalizeUUID(activeUser); !ok {
			b.Fatal("not a uuid")
		}
	}
}
