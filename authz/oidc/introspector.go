package oidc

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/internal/boundedcache"
	"github.com/gatehouse-authz/gatehouse/internal/logbudget"
)

// logLevelRefusal is the level of the line saying why an answer was
// refused: the client learns nothing but "Login failed", an operator
// chasing one may turn debug on.
const logLevelRefusal = slog.LevelDebug

func slogReason(r refusal) slog.Attr { return slog.String("reason", string(r)) }

// Introspector implements authz.Introspector against one provider, with an
// in-process verdict cache, an optional shared one, and one introspection
// in flight per token. It is safe for concurrent use.
type Introspector struct {
	cfg    *settings
	shared SharedCache
	obs    Observer
	mem    *boundedcache.Cache[[sha256.Size]byte, *authz.Introspection]
	flight singleflight.Group
	jwks   *jwksCache
	logs   *logbudget.Budget
}

var _ authz.Introspector = (*Introspector)(nil)

// New validates cfg and returns an Introspector. Errors name the field at
// fault and never quote the secret or the key.
func New(cfg Config) (*Introspector, error) {
	s, err := validate(cfg)
	if err != nil {
		return nil, err
	}
	i := &Introspector{
		cfg:    s,
		shared: cfg.Shared,
		obs:    cfg.Observer,
		mem:    boundedcache.New[[sha256.Size]byte, *authz.Introspection](s.cacheSize),
		logs:   logbudget.New(0),
	}
	if s.jwksURL != "" {
		i.jwks = &jwksCache{url: s.jwksURL, alg: s.signingAlg, client: s.client, now: s.now}
	}
	return i, nil
}

// flightResult is what one introspection in flight hands its waiters.
type flightResult struct {
	v authz.Introspection
}

// Introspect returns the verdict on token: from the in-process cache, else
// from the shared cache, else from the provider (one request per token at a
// time, whatever the number of callers). An error means no verdict; it is
// never cached and never holds the token.
func (i *Introspector) Introspect(ctx context.Context, token string) (authz.Introspection, error) {
	if token == "" || len(token) > maxTokenBytes {
		// Never sent: an empty token is no token, and an oversize one is
		// refused rather than posted.
		return authz.Introspection{}, nil
	}
	key := digest(token)
	if v, ok := i.mem.Get(key, i.cfg.now()); ok {
		i.lookup(LayerMemory, LookupHit)
		return *v, nil
	}
	i.lookup(LayerMemory, LookupMiss)
	return i.slow(ctx, key, token)
}

// digest is the token's SHA-256. A token of usual length is copied to a
// stack buffer first: []byte(token) would allocate on every cached request.
func digest(token string) [sha256.Size]byte {
	var buf [512]byte
	if len(token) <= len(buf) {
		n := copy(buf[:], token)
		return sha256.Sum256(buf[:n])
	}
	return sha256.Sum256([]byte(token))
}

// slow is Introspect past an in-process miss, apart so that the fast path
// keeps key on the stack (the flight's closure moves it to the heap).
func (i *Introspector) slow(ctx context.Context, key [sha256.Size]byte, token string) (authz.Introspection, error) {
	// The flight runs without the caller's cancellation (but with its
	// values) and under its own timeout, so that the first caller giving up
	// does not fail the others waiting on the same token.
	fctx := context.WithoutCancel(ctx)
	ch := i.flight.DoChan(string(key[:]), func() (any, error) {
		return i.resolve(fctx, key, token)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return authz.Introspection{}, r.Err
		}
		return r.Val.(flightResult).v, nil
	case <-ctx.Done():
		return authz.Introspection{}, fmt.Errorf("introspection: %w", context.Cause(ctx))
	}
}

// resolve is one flight: the shared cache, then the provider; the verdict
// is stored in both caches.
func (i *Introspector) resolve(ctx context.Context, key [sha256.Size]byte, token string) (res any, err error) {
	defer func() {
		// A panic in a singleflight.DoChan function crashes the process;
		// here it is a failed introspection instead. Its value is not logged:
		// it might hold the answer, or worse.
		if p := recover(); p != nil {
			i.cfg.logger.LogAttrs(ctx, slog.LevelError, "introspection panicked", slog.String("panic_type", fmt.Sprintf("%T", p)))
			res, err = nil, errors.New("introspection: internal error")
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, i.cfg.timeout)
	defer cancel()

	now := i.cfg.now()
	// A flight that ended between this caller's miss and its flight
	// starting has stored the verdict.
	if v, ok := i.mem.Get(key, now); ok {
		return flightResult{*v}, nil
	}
	if v, ok := i.fromShared(ctx, key, now); ok {
		return flightResult{v}, nil
	}

	start := time.Now()
	v, outcome, err := i.askProvider(ctx, token)
	if i.obs != nil {
		i.obs.Introspected(outcome, time.Since(start))
	}
	if err != nil {
		return nil, err
	}
	i.store(ctx, key, v, i.cfg.now())
	return flightResult{v}, nil
}

// fromShared looks key up in the shared cache. Errors and malformed values
// are misses (the provider is asked, and the fresh verdict overwrites a
// malformed value); neither can produce an allow.
func (i *Introspector) fromShared(ctx context.Context, key [sha256.Size]byte, now time.Time) (authz.Introspection, bool) {
	if i.shared == nil {
		return authz.Introspection{}, false
	}
	sctx, cancel := context.WithTimeout(ctx, sharedTimeout)
	b, found, err := i.shared.Get(sctx, key)
	cancel()
	switch {
	case err != nil:
		i.lookup(LayerShared, LookupError)
		i.warn(ctx, "introspection shared cache read failed; asking the provider", err)
		return authz.Introspection{}, false
	case !found:
		i.lookup(LayerShared, LookupMiss)
		return authz.Introspection{}, false
	}
	v, until, err := i.decodeShared(b, now)
	if err != nil {
		i.lookup(LayerShared, LookupError)
		i.warn(ctx, "introspection shared cache value malformed; asking the provider", err)
		return authz.Introspection{}, false
	}
	i.lookup(LayerShared, LookupHit)
	// Kept in process no longer than the shared entry nor this replica's
	// own TTL for such a verdict.
	if local := now.Add(i.ttl(v, now)); local.Before(until) {
		until = local
	}
	if until.After(now) {
		i.mem.Set(key, &v, now, until)
	}
	return v, true
}

// ttl is how long a verdict may be cached from now: an active one until the
// token's exp, at most CacheTTL; a refusal NegativeCacheTTL. Zero or less:
// not cached.
func (i *Introspector) ttl(v authz.Introspection, now time.Time) time.Duration {
	if !v.Active {
		return i.cfg.negativeTTL
	}
	d := i.cfg.cacheTTL
	if !v.Expiry.IsZero() {
		d = min(d, v.Expiry.Sub(now))
	}
	return d
}

// store caches a fresh verdict in process and in the shared cache.
func (i *Introspector) store(ctx context.Context, key [sha256.Size]byte, v authz.Introspection, now time.Time) {
	d := i.ttl(v, now)
	if d <= 0 {
		return
	}
	until := now.Add(d)
	i.mem.Set(key, &v, now, until)
	if i.shared == nil {
		return
	}
	b, err := encodeShared(v, until)
	if err != nil {
		i.warn(ctx, "introspection verdict not encodable for the shared cache", err)
		return
	}
	// Its own deadline: the provider may have used most of the flight's.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sharedTimeout)
	defer cancel()
	if err := i.shared.Set(sctx, key, b, d); err != nil {
		i.warn(ctx, "introspection shared cache write failed", err)
	}
}

func (i *Introspector) lookup(layer, result string) {
	if i.obs != nil {
		i.obs.CacheLookup(layer, result)
	}
}

// warn logs a shared-cache problem within the log budget: a Redis outage
// must not become a log flood. err never holds a token (keys are digests).
func (i *Introspector) warn(ctx context.Context, msg string, err error) {
	if i.logs.Enabled(ctx, i.cfg.logger, slog.LevelWarn) {
		i.cfg.logger.LogAttrs(ctx, slog.LevelWarn, msg, slog.String("error", err.Error()))
	}
}
