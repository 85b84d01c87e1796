package server

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-authz/gatehouse/internal/logbudget"
	"github.com/gatehouse-authz/gatehouse/internal/telemetry"
	"github.com/gatehouse-authz/gatehouse/userstore"
	"github.com/gatehouse-authz/gatehouse/userstore/grpcorigin"
	"github.com/gatehouse-authz/gatehouse/userstore/pgorigin"
	"github.com/gatehouse-authz/gatehouse/userstore/redisstore"
)

// originConnectTimeout bounds the connection to a postgres:// origin and the
// check of its queries at start.
const originConnectTimeout = 15 * time.Second

// follow is an origin's change feed: pgorigin's Listen or grpcorigin's
// Watch.
type follow func(ctx context.Context, onChange func(userstore.Kind, string), onReset func()) error

// origin is the directory of record behind the caches, when one is
// configured (Config.DirectoryOrigin).
type origin struct {
	describe string // the URL without its password, and its kind
	kind     string // "postgres" or "grpc"
	chain    *userstore.OriginChain
	circuit  *userstore.Circuit
	follow   follow
	closeFn  func()
	log      *slog.Logger
	logs     *logbudget.Budget

	resets    atomic.Int64 // change feeds established (the first one included)
	lastReset atomic.Int64 // unix nanoseconds of the latest
}

// newOriginDirectory builds the chain in front of the origin: the
// in-process cache, Redis when configured (the origin's answers written
// there with a TTL), then the origin behind its circuit. A postgres://
// origin is connected and its queries checked now: a wrong URL, password or
// query refuses the start. Redis, as without an origin, may be down at
// start.
func newOriginDirectory(ctx context.Context, cfg Config, logger *slog.Logger, metrics *telemetry.Metrics) (*directory, error) {
	logs := logbudget.New(zeroMeansNone(cfg.LogRate))
	o := &origin{kind: originKind(cfg.DirectoryOrigin), log: logger, logs: logs}
	var dir userstore.Directory
	var subjects userstore.Subjects // nil: the origin cannot find users by sub
	switch o.kind {
	case "postgres":
		cctx, cancel := context.WithTimeout(ctx, originConnectTimeout)
		defer cancel()
		pg, err := pgorigin.New(cctx, pgorigin.Options{
			URL:       cfg.DirectoryOrigin,
			Password:  cfg.DirectoryOriginPassword,
			UserQuery: cfg.DirectoryUserQuery,
			AppQuery:  cfg.DirectoryAppQuery,
			SubQuery:  cfg.DirectorySubQuery,
			// A role without SELECT on meet_user.sub still starts when
			// OIDC access tokens are off.
			NoSubjects: cfg.OIDC.IntrospectionURL == "",
			Logger:     logger,
			LogBudget:  logs,
		})
		if err != nil {
			return nil, fmt.Errorf("directory origin: %w", err)
		}
		dir, subjects, o.follow, o.closeFn = pg, pg, pg.Listen, pg.Close
		o.describe = "postgres " + pgorigin.RedactURL(cfg.DirectoryOrigin)
	case "grpc":
		gc, err := grpcorigin.New(grpcorigin.Options{URL: cfg.DirectoryOrigin, CAFile: cfg.DirectoryOriginCAFile, Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("directory origin: %w", err)
		}
		dir, o.follow, o.closeFn = gc, gc.Watch, func() { _ = gc.Close() }
		o.describe = "grpc " + redisstore.RedactURL(cfg.DirectoryOrigin)
	default:
		return nil, fmt.Errorf("directory origin: unsupported URL scheme (want postgres://, postgresql://, grpc:// or grpcs://)")
	}
	// The origin's circuit: a dead database costs a lookup a failed check,
	// not a connection timeout; stale cached entries still answer.
	o.circuit = userstore.NewCircuit(metrics.Origin(dir), userstore.CircuitOptions{
		Threshold: circuitThreshold, Cooldown: circuitCooldown, Name: "directory origin", Logger: logger,
	})

	d := &directory{describe: "directory origin " + o.describe, origin: o, logs: logs, log: logger,
		normalize: userIDNormalizer(cfg), subjects: subjects}
	rt := userstore.ReadThroughOptions{
		TTL:         cfg.RedisCacheTTL,
		NegativeTTL: zeroMeansNoCache(cfg.RedisCacheNegativeTTL),
		Logger:      logger,
		LogBudget:   logs,
		OnLookup:    metrics.ObserveLookup,
	}
	var shared userstore.SharedCache
	if cfg.Redis != nil {
		client, mode, err := redisstore.NewUniversalClient(*cfg.Redis)
		if err != nil {
			o.closeFn()
			return nil, fmt.Errorf("redis: %w", err)
		}
		store := redisstore.New(client, redisstore.Options{Prefix: cfg.RedisPrefix, Timeout: cfg.RedisTimeout,
			NormalizeUserID: userIDNormalizer(cfg), Logger: logger, LogBudget: logs})
		d.client, d.mode, d.pingWithin = client, mode, max(cfg.RedisTimeout, time.Second)
		d.circuits = userstore.NewCircuits(store, store.Partition, userstore.CircuitOptions{
			Threshold: circuitThreshold, Cooldown: circuitCooldown, Name: "redis", Logger: logger,
		})
		d.describe += ", cached in redis " + string(mode) + " " + cfg.Redis.Describe()
		rt.Circuits = d.circuits
		shared = store.OriginCache()
		d.verdicts = store.IntrospectionCache()
	}
	o.chain = userstore.NewOriginChain(o.circuit, shared, userstore.OriginChainOptions{
		Cache: userstore.CacheOptions{
			Size:         cfg.CacheSize,
			TTL:          cfg.CacheTTL,
			NegativeTTL:  zeroMeansNoCache(cfg.CacheNegativeTTL),
			StaleIfError: cfg.CacheStaleIfError,
			Logger:       logger,
			LogBudget:    logs,
			OnLookup:     metrics.ObserveLookup,
		},
		ReadThrough:     rt,
		NormalizeUserID: d.normalize,
	})
	d.Directory = o.chain
	d.cache = o.chain.Cache
	if d.client != nil {
		if err := d.ping(ctx); err != nil {
			logger.Warn("Redis is unreachable at start; serving anyway, lookups go straight to the directory origin until it answers",
				"redis", cfg.Redis.Describe(), "error", err.Error())
		}
	}
	return d, nil
}

// zeroMeansNoCache maps a TTL setting's 0 ("not cached") to the caches'
// negative value: they read 0 as "the default".
func zeroMeansNoCache(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// start follows the origin's changes and retries the Redis deletions that
// failed, until ctx is done.
func (o *origin) start(ctx context.Context, wg *sync.WaitGroup) {
	wg.Add(2)
	go func() {
		defer wg.Done()
		_ = o.follow(ctx, func(kind userstore.Kind, id string) {
			if err := o.chain.Changed(ctx, kind, id); err != nil && o.logs.Enabled(ctx, o.log, slog.LevelWarn) {
				o.log.Warn("directory change applied in process; its Redis entry is not deleted yet (retried, not trusted until then)",
					"kind", kind.String(), "error", err.Error())
			}
		}, func() {
			// Changes made while the feed was down were missed: drop what
			// this replica holds. Redis entries expire by their TTL.
			o.chain.Reset()
			o.resets.Add(1)
			o.lastReset.Store(time.Now().UnixNano())
		})
	}()
	go func() {
		defer wg.Done()
		o.chain.Run(ctx, userstore.DefaultPendingRetry)
	}()
}

// status reports the origin's state for /readyz?verbose: whether it answers
// (its circuit), and whether its change feed is established.
func (o *origin) status() (bool, string) {
	st, lastErr, lastAt := o.circuit.State()
	text := o.describe + ": circuit " + st.String()
	if lastErr != "" {
		text += "; last error " + lastAt.UTC().Format(time.RFC3339) + ": " + lastErr
	}
	feed := "LISTEN " + pgorigin.Channel
	if o.kind == "grpc" {
		feed = "WatchChanges"
	}
	switch n := o.resets.Load(); n {
	case 0:
		text += "; change notifications (" + feed + "): not established yet, revocations wait for the cache TTLs"
	default:
		text += fmt.Sprintf("; change notifications (%s): established %s (%d reconnection(s))",
			feed, time.Unix(0, o.lastReset.Load()).UTC().Format(time.RFC3339), n-1)
	}
	if p := o.chain.ReadThrough().Pending(); p > 0 {
		text += fmt.Sprintf("; %d Redis deletion(s) pending", p)
	}
	return st == userstore.CircuitClosed && o.resets.Load() > 0, text
}
