package oidc

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/internal/testkit"
)

// TestPositiveTTLCappedByExp: an active verdict is cached until the token's
// exp when that comes before CacheTTL.
func TestPositiveTTLCappedByExp(t *testing.T) {
	claims := activeClaims(t0)
	claims["exp"] = t0.Add(30 * time.Second).Unix()
	f := newFixture(t, jsonAnswer(claims), nil)
	token := newToken(t)
	for _, step := range []struct {
		advance time.Duration
		active  bool
		asked   int64
	}{
		{0, true, 1},
		{29 * time.Second, true, 1}, // served from the cache
		{time.Second, false, 2},     // at exp: the cache entry is gone; the provider's answer is now past exp
	} {
		f.clock.Advance(step.advance)
		active, _, err := f.introspect(t, token)
		if err != nil || active != step.active {
			t.Fatalf("after %v: active=%v err=%v", step.advance, active, err)
		}
		if n := f.p.introspected.Load(); n != step.asked {
			t.Fatalf("after %v: provider asked %d times, want %d", step.advance, n, step.asked)
		}
	}
}

// TestPositiveTTLCappedByCacheTTL: without exp (or a later one) CacheTTL
// bounds the entry.
func TestPositiveTTLCappedByCacheTTL(t *testing.T) {
	claims := activeClaims(t0)
	delete(claims, "exp")
	f := newFixture(t, jsonAnswer(claims), func(c *Config) { c.CacheTTL = 20 * time.Second })
	token := newToken(t)
	f.introspect(t, token)
	f.clock.Advance(19 * time.Second)
	f.introspect(t, token)
	if n := f.p.introspected.Load(); n != 1 {
		t.Fatalf("provider asked %d times within the TTL", n)
	}
	f.clock.Advance(time.Second)
	if active, _, err := f.introspect(t, token); err != nil || !active {
		t.Fatalf("active=%v err=%v", active, err)
	}
	if n := f.p.introspected.Load(); n != 2 {
		t.Fatalf("provider asked %d times after the TTL, want 2", n)
	}
}

func TestNegativeTTL(t *testing.T) {
	for _, answer := range []struct {
		name string
		h    http.HandlerFunc
		desc string
	}{
		{"inactive", jsonAnswer(map[string]any{"active": false}), ""},
		{"provider 401", answer401(`Bearer realm="r", error_description="expired"`), "expired"},
	} {
		t.Run(answer.name, func(t *testing.T) {
			f := newFixture(t, answer.h, nil)
			token := newToken(t)
			for _, step := range []struct {
				advance time.Duration
				asked   int64
			}{{0, 1}, {9 * time.Second, 1}, {time.Second, 2}} {
				f.clock.Advance(step.advance)
				active, desc, err := f.introspect(t, token)
				if err != nil || active || desc != answer.desc {
					t.Fatalf("active=%v desc=%q err=%v", active, desc, err)
				}
				if n := f.p.introspected.Load(); n != step.asked {
					t.Fatalf("after %v: provider asked %d times, want %d", step.advance, n, step.asked)
				}
			}
		})
	}
}

// TestCachingDisabled: a negative TTL turns that caching off.
func TestCachingDisabled(t *testing.T) {
	f := newFixture(t, jsonAnswer(activeClaims(t0)), func(c *Config) { c.CacheTTL = -1 })
	token := newToken(t)
	f.introspect(t, token)
	f.introspect(t, token)
	if n := f.p.introspected.Load(); n != 2 {
		t.Fatalf("provider asked %d times with caching off, want 2", n)
	}
}

// TestServedWhileProviderDown: a cached verdict outlives the provider for
// its TTL, then the answer is an error, never an allow.
func TestServedWhileProviderDown(t *testing.T) {
	f := newFixture(t, jsonAnswer(activeClaims(t0)), nil)
	token := newToken(t)
	if active, _, err := f.introspect(t, token); err != nil || !active {
		t.Fatalf("active=%v err=%v", active, err)
	}
	f.p.srv.Close()
	f.clock.Advance(59 * time.Second)
	if active, _, err := f.introspect(t, token); err != nil || !active {
		t.Fatalf("provider down, within TTL: active=%v err=%v", active, err)
	}
	f.clock.Advance(time.Second)
	if active, _, err := f.introspect(t, token); err == nil || active {
		t.Fatalf("provider down, past TTL: active=%v err=%v", active, err)
	}
	// Another token: error.
	if active, _, err := f.introspect(t, newToken(t)); err == nil || active {
		t.Fatalf("provider down, new token: active=%v err=%v", active, err)
	}
}

// gate is a provider answer that waits until released.
type gate struct {
	arrived chan struct{}
	release chan struct{}
	once    sync.Once
}

func newGate() *gate {
	return &gate{arrived: make(chan struct{}, 100), release: make(chan struct{})}
}

func (g *gate) handler(then http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		g.arrived <- struct{}{}
		select {
		case <-g.release:
		case <-r.Context().Done():
			return
		}
		then(w, r)
	}
}

func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

// waitMisses waits until n callers have missed the in-process cache, that
// is have reached the flight.
func waitMisses(t *testing.T, o *observer, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for o.misses.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d callers arrived", o.misses.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSingleflight: 50 concurrent callers with one token cost one
// provider request.
func TestSingleflight(t *testing.T) {
	g := newGate()
	f := newFixture(t, g.handler(jsonAnswer(activeClaims(t0))), nil)
	defer g.open()
	token := newToken(t)
	const callers = 50
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			v, err := f.in.Introspect(context.Background(), token)
			if err == nil && !v.Active {
				err = errors.New("not active")
			}
			errs <- err
		})
	}
	waitMisses(t, f.obs, callers)
	<-g.arrived
	// Give stragglers between their miss and the flight no chance to slip
	// past: the flight is still held open, so they can only join it.
	g.open()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := f.p.introspected.Load(); n != 1 {
		t.Fatalf("provider asked %d times by %d callers, want 1", n, callers)
	}
}

// TestCancelledWaiter: a caller giving up gets its own error at once and
// does not fail the others waiting for the same token.
func TestCancelledWaiter(t *testing.T) {
	g := newGate()
	f := newFixture(t, g.handler(jsonAnswer(activeClaims(t0))), nil)
	defer g.open()
	token := newToken(t)

	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := f.in.Introspect(ctx, token)
		first <- err
	}()
	<-g.arrived // the flight (started by the first caller) is at the provider
	second := make(chan authz.Introspection, 1)
	secondErr := make(chan error, 1)
	go func() {
		v, err := f.in.Introspect(context.Background(), token)
		second <- v
		secondErr <- err
	}()
	waitMisses(t, f.obs, 2)
	cancel()
	err := <-first
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: %v", err)
	}
	if strings.Contains(err.Error(), token) {
		t.Fatalf("error holds the token: %v", err)
	}
	g.open()
	if err := <-secondErr; err != nil {
		t.Fatalf("second caller failed with the first: %v", err)
	}
	if v := <-second; !v.Active {
		t.Fatalf("second caller: %+v", v)
	}
	if n := f.p.introspected.Load(); n != 1 {
		t.Fatalf("provider asked %d times, want 1", n)
	}
}

// twoReplicas returns two Introspectors sharing cache, each with its own
// clock, against one provider.
func twoReplicas(t *testing.T, cache SharedCache, answer http.HandlerFunc) (*fixture, *fixture) {
	t.Helper()
	a := newFixture(t, answer, func(c *Config) { c.Shared = cache })
	b := &fixture{p: a.p, clock: testkit.NewClock(t0), obs: newObserver(), logs: &testkit.LogBuffer{}}
	in, err := New(Config{
		IntrospectionURL: a.p.introspectURL(), Issuer: testIssuer, ClientSecret: testSecret,
		Shared: cache, Observer: b.obs, Logger: testkit.NewLogger(b.logs), Now: b.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	b.in = in
	return a, b
}

// TestSharedCacheAcrossReplicas: the second replica takes the first's
// verdict from the shared cache and does not call the provider; the shared
// cache sees only digests, never token text.
func TestSharedCacheAcrossReplicas(t *testing.T) {
	cache := newMapCache()
	a, b := twoReplicas(t, cache, jsonAnswer(activeClaims(t0)))
	token := newToken(t)
	if active, _, err := a.introspect(t, token); err != nil || !active {
		t.Fatalf("replica a: active=%v err=%v", active, err)
	}
	va, _ := a.in.Introspect(context.Background(), token)
	vb, err := b.in.Introspect(context.Background(), token)
	if err != nil || vb != va {
		t.Fatalf("replica b: %+v, %v; want %+v", vb, err, va)
	}
	if n := a.p.introspected.Load(); n != 1 {
		t.Fatalf("provider asked %d times by two replicas, want 1", n)
	}
	if b.obs.lookup("shared/hit") != 1 || b.obs.outcome(OutcomeActive) != 0 {
		t.Fatalf("replica b: lookups %v outcomes %v", b.obs.lookups, b.obs.outcomes)
	}
	key := sha256.Sum256([]byte(token))
	if _, ok := cache.get(key); !ok || len(cache.m) != 1 {
		t.Fatalf("shared cache not keyed by the token's SHA-256: %d entries", len(cache.m))
	}
	if ttl := cache.ttls[key]; ttl != DefaultCacheTTL {
		t.Fatalf("shared TTL = %v, want %v", ttl, DefaultCacheTTL)
	}
	for k, v := range cache.m {
		if strings.Contains(string(k[:]), token) || strings.Contains(string(v), token) {
			t.Fatal("token text in the shared cache")
		}
	}
}

// TestSharedExpiryBoundsMemory: a verdict read from the shared cache is kept
// in process no longer than the shared entry's absolute expiry.
func TestSharedExpiryBoundsMemory(t *testing.T) {
	cache := newMapCache()
	claims := activeClaims(t0)
	delete(claims, "exp")
	a, b := twoReplicas(t, cache, jsonAnswer(claims))
	token := newToken(t)
	a.introspect(t, token) // shared entry valid until t0+60s
	b.clock.Advance(50 * time.Second)
	if active, _, err := b.introspect(t, token); err != nil || !active {
		t.Fatalf("replica b: active=%v err=%v", active, err)
	}
	if n := a.p.introspected.Load(); n != 1 {
		t.Fatalf("provider asked %d times", n)
	}
	// At t0+60s the shared verdict is over: b's in-process copy must be too
	// (b would otherwise keep it until t0+110s). The map cache does not
	// expire entries, so b finds the stale value, refuses it, asks.
	b.clock.Advance(10 * time.Second)
	if active, _, err := b.introspect(t, token); err != nil || !active {
		t.Fatalf("replica b later: active=%v err=%v", active, err)
	}
	if n := a.p.introspected.Load(); n != 2 {
		t.Fatalf("provider asked %d times, want 2 (in-process copy outlived the shared entry)", n)
	}
}

// TestMalformedSharedValue: a value that is not a valid verdict is a miss:
// the provider is asked, its verdict overwrites the value, and a forged
// "allow" is never served.
func TestMalformedSharedValue(t *testing.T) {
	until := t0.Add(time.Minute).UnixMilli()
	rows := map[string]string{
		"garbage":            "\x00\x01not json",
		"empty":              "",
		"other version":      `{"v":2,"until":` + itoa(until) + `,"active":true,"sub":"admin","aud":"x","scope":"lasuite_meet"}`,
		"unknown field":      `{"v":1,"until":` + itoa(until) + `,"active":true,"sub":"admin","aud":"x","scope":"lasuite_meet","admin":true}`,
		"expired":            `{"v":1,"until":` + itoa(t0.UnixMilli()) + `,"active":true,"sub":"admin","aud":"x","scope":"lasuite_meet"}`,
		"scope not required": `{"v":1,"until":` + itoa(until) + `,"active":true,"sub":"admin","aud":"x","scope":"openid"}`,
		"no sub":             `{"v":1,"until":` + itoa(until) + `,"active":true,"aud":"x","scope":"lasuite_meet"}`,
		"sub not header-safe": `{"v":1,"until":` + itoa(until) +
			`,"active":true,"sub":"a\r\nx-admin: 1","aud":"x","scope":"lasuite_meet"}`,
		"refusal with sub": `{"v":1,"until":` + itoa(until) + `,"active":false,"sub":"admin"}`,
		"trailing data":    `{"v":1,"until":` + itoa(until) + `,"active":false} {}`,
	}
	for name, value := range rows {
		t.Run(name, func(t *testing.T) {
			cache := newMapCache()
			answer := activeClaims(t0)
			f := newFixture(t, jsonAnswer(answer), func(c *Config) { c.Shared = cache })
			token := newToken(t)
			key := sha256.Sum256([]byte(token))
			cache.put(key, []byte(value))
			v, err := f.in.Introspect(context.Background(), token)
			if err != nil || !v.Active || v.Sub != "sub-1" {
				t.Fatalf("verdict %+v, %v", v, err)
			}
			if n := f.p.introspected.Load(); n != 1 {
				t.Fatalf("provider asked %d times, want 1", n)
			}
			stored, _ := cache.get(key)
			if _, _, err := f.in.decodeShared(stored, t0); err != nil {
				t.Fatalf("malformed value not overwritten: %q (%v)", stored, err)
			}
			if f.obs.lookup("shared/error") != 1 {
				t.Fatalf("lookups %v", f.obs.lookups)
			}
			if !strings.Contains(f.logs.String(), "malformed") {
				t.Fatalf("malformed value not logged: %s", f.logs.String())
			}
		})
	}
}

// TestForgedSharedRefusalNotAnAllow: a shared refusal is served as one.
func TestSharedRefusal(t *testing.T) {
	cache := newMapCache()
	a, b := twoReplicas(t, cache, answer401(`Bearer realm="r", error_description="revoked"`))
	token := newToken(t)
	a.introspect(t, token)
	active, desc, err := b.introspect(t, token)
	if err != nil || active || desc != "revoked" {
		t.Fatalf("replica b: active=%v desc=%q err=%v", active, desc, err)
	}
	if n := a.p.introspected.Load(); n != 1 {
		t.Fatalf("provider asked %d times", n)
	}
	if ttl := cache.ttls[sha256.Sum256([]byte(token))]; ttl != DefaultNegativeCacheTTL {
		t.Fatalf("shared TTL of a refusal = %v", ttl)
	}
}

// TestSharedCacheErrors: a failing shared cache is a miss (the provider
// answers), logged within budget; a hung one is bounded.
func TestSharedCacheErrors(t *testing.T) {
	cache := newMapCache()
	cache.getErr = errors.New("redis: connection refused")
	cache.setErr = errors.New("redis: READONLY")
	f := newFixture(t, jsonAnswer(activeClaims(t0)), func(c *Config) { c.Shared = cache })
	token := newToken(t)
	if active, _, err := f.introspect(t, token); err != nil || !active {
		t.Fatalf("active=%v err=%v", active, err)
	}
	if f.obs.lookup("shared/error") != 1 {
		t.Fatalf("lookups %v", f.obs.lookups)
	}
	logs := f.logs.String()
	if !strings.Contains(logs, "connection refused") || !strings.Contains(logs, "READONLY") {
		t.Fatalf("shared cache errors not logged: %s", logs)
	}

	hung := newMapCache()
	hung.hanging = true
	f2 := newFixture(t, jsonAnswer(activeClaims(t0)), func(c *Config) { c.Shared = hung; c.Timeout = 3 * time.Second })
	if active, _, err := f2.introspect(t, newToken(t)); err != nil || !active {
		t.Fatalf("hung shared cache: active=%v err=%v", active, err)
	}
}

// TestErrorsNotCached covers the shared cache too: an error is written
// nowhere.
func TestErrorsNotCached(t *testing.T) {
	cache := newMapCache()
	f := newFixture(t, rawAnswer(http.StatusBadGateway, ""), func(c *Config) { c.Shared = cache })
	token := newToken(t)
	if _, _, err := f.introspect(t, token); err == nil {
		t.Fatal("no error")
	}
	if cache.sets != 0 {
		t.Fatalf("error written to the shared cache")
	}
	f.p.setAnswer(jsonAnswer(activeClaims(t0)))
	if active, _, err := f.introspect(t, token); err != nil || !active {
		t.Fatalf("active=%v err=%v", active, err)
	}
}

// TestNoTokenInLogsAtDebug: every path that logs, at debug level, with
// the token nowhere in the output.
func TestNoTokenInLogsAtDebug(t *testing.T) {
	cache := newMapCache()
	cache.setErr = errors.New("write failed")
	f := newFixture(t, jsonAnswer(map[string]any{"active": true, "scope": "openid"}), func(c *Config) { c.Shared = cache })
	token := newToken(t)
	cache.put(sha256.Sum256([]byte(token)), []byte("junk"))
	f.introspect(t, token)
	f.p.setAnswer(answer401(`Bearer realm="r", error_description="x"`))
	f.introspect(t, newToken(t))
	f.p.setAnswer(rawAnswer(http.StatusInternalServerError, token))
	f.introspect(t, newToken(t))
	logs := f.logs.String()
	if !strings.Contains(logs, "introspection answer refused") {
		t.Fatalf("refusal not logged at debug: %s", logs)
	}
	for _, secret := range []string{token, testSecret} {
		if strings.Contains(logs, secret) {
			t.Fatalf("log holds a secret: %s", logs)
		}
	}
}

func TestTokenBounds(t *testing.T) {
	f := newFixture(t, jsonAnswer(activeClaims(t0)), nil)
	for _, token := range []string{"", strings.Repeat("a", maxTokenBytes+1)} {
		v, err := f.in.Introspect(context.Background(), token)
		if err != nil || v.Active {
			t.Fatalf("len %d: %+v, %v", len(token), v, err)
		}
	}
	if n := f.p.introspected.Load(); n != 0 {
		t.Fatalf("provider asked %d times", n)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
