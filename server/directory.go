package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/authz/oidc"
	"github.com/gatehouse-authz/gatehouse/internal/logbudget"
	"github.com/gatehouse-authz/gatehouse/internal/telemetry"
	"github.com/gatehouse-authz/gatehouse/userstore"
	"github.com/gatehouse-authz/gatehouse/userstore/redisstore"
)

// The circuit around Redis: after circuitThreshold consecutive failed
// lookups, misses fail at once for circuitCooldown, then one trial lookup
// (or a successful probe) decides whether it closes.
const (
	circuitThreshold = 5
	circuitCooldown  = time.Second
)

// redisProbeInterval is how often the server pings Redis to report its state
// in logs and /readyz?verbose. Decisions never wait for the probe: a lookup
// that fails is a 503 on its own.
const redisProbeInterval = 5 * time.Second

// Redis reachability as last observed.
const (
	redisUnknown int32 = iota
	redisUp
	redisDown
)

// directory is the user directory the decision core reads, with what the
// server needs to report on it and close it.
type directory struct {
	userstore.Directory
	// describe names the directory for logs, without secrets.
	describe string

	// origin is the directory of record behind the caches (nil: none).
	origin *origin

	// subjects finds users by OIDC sub (nil: this directory cannot, a
	// gRPC origin); verdicts is Redis's OIDC verdict cache (nil: no Redis).
	subjects userstore.Subjects
	verdicts oidc.SharedCache
	// subjectCache caches subjects in front of a remote directory (nil:
	// none); the invalidation listener keeps it current.
	subjectCache *userstore.SubjectCache

	// Redis only.
	client     redis.UniversalClient
	mode       redisstore.Mode
	cache      *userstore.Cache
	circuits   *userstore.Circuits
	channel    string // invalidation channel
	normalize  func(string) (string, bool)
	listener   *listener
	sentinels  *redisstore.SentinelWatch // Sentinel only
	logs       *logbudget.Budget
	pingWithin time.Duration
	state      atomic.Int32
	log        *slog.Logger
	stop       context.CancelFunc
	wg         sync.WaitGroup
	closeOnce  sync.Once
	closeErr   error

	mu      sync.Mutex
	lastErr string // last probe error, for /readyz?verbose
}

// newDirectory builds the directory cfg describes, or wraps the one opts
// supplies.
func newDirectory(ctx context.Context, cfg Config, logger *slog.Logger, opts Options) (*directory, error) {
	switch {
	case opts.Directory != nil:
		name := opts.DirectoryName
		if name == "" {
			name = "supplied directory"
		}
		d := &directory{Directory: opts.Directory, describe: name}
		d.subjects, _ = opts.Directory.(userstore.Subjects)
		return d, nil
	case cfg.UsersFile != "":
		return newUsersFileDirectory(cfg, opts.reloads)
	case cfg.DirectoryOrigin != "":
		return newOriginDirectory(ctx, cfg, logger, opts.metrics)
	case cfg.Redis != nil:
		return newRedisDirectory(ctx, cfg, logger, opts.metrics)
	default:
		return nil, errors.New("no user directory configured")
	}
}

// userIDNormalizer returns the function that gives user ids the form the
// decision core looks them up in, or nil when ids are opaque.
func userIDNormalizer(cfg Config) func(string) (string, bool) {
	if cfg.UserIDFormat == authz.IDFormatUUID {
		return authz.NormalizeUUID
	}
	return nil
}

// newRedisDirectory connects to Redis lazily: a Redis that is down now is
// logged, not refused, and lookups fail closed until it answers.
// metrics (nil: none) counts and times the Redis lookups and the cache's
// outcomes.
func newRedisDirectory(ctx context.Context, cfg Config, logger *slog.Logger, metrics *telemetry.Metrics) (*directory, error) {
	client, mode, err := redisstore.NewUniversalClient(*cfg.Redis)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	// Directory warnings that can come once per request (stale entries,
	// invalid records, malformed invalidation messages and subject index
	// entries) share one budget of GATEHOUSE_LOG_RATE lines a second.
	logs := logbudget.New(zeroMeansNone(cfg.LogRate))
	store := redisstore.New(client, redisstore.Options{Prefix: cfg.RedisPrefix, Timeout: cfg.RedisTimeout,
		NormalizeUserID: userIDNormalizer(cfg), Logger: logger, LogBudget: logs})
	// The circuits sit between the cache and Redis: while one is open,
	// misses fail at once and the cache's stale entries still answer.
	// There is one per Cluster master (Store.Partition names the master
	// of a record's slot), so that a dead master costs only its own
	// shard; a standalone or Sentinel deployment has one.
	circuits := userstore.NewCircuits(metrics.Redis(store), store.Partition, userstore.CircuitOptions{
		Threshold: circuitThreshold,
		Cooldown:  circuitCooldown,
		Name:      "redis",
		Logger:    logger,
	})
	negTTL := cfg.CacheNegativeTTL
	if negTTL == 0 {
		negTTL = -1 // the cache reads 0 as "default"; the setting's 0 means "do not cache"
	}
	cache := userstore.NewCache(circuits, userstore.CacheOptions{
		Size:          cfg.CacheSize,
		TTL:           cfg.CacheTTL,
		NegativeTTL:   negTTL,
		StaleIfError:  cfg.CacheStaleIfError,
		LookupTimeout: cfg.RedisTimeout,
		Logger:        logger,
		LogBudget:     logs,
		OnLookup:      metrics.ObserveLookup,
	})
	d := &directory{
		Directory:  cache,
		subjects:   store,
		verdicts:   store.IntrospectionCache(),
		describe:   "redis " + string(mode) + " " + cfg.Redis.Describe(),
		client:     client,
		mode:       mode,
		cache:      cache,
		circuits:   circuits,
		logs:       logs,
		channel:    store.InvalidationChannel(),
		normalize:  userIDNormalizer(cfg),
		pingWithin: max(cfg.RedisTimeout, time.Second),
		log:        logger,
	}
	if mode == redisstore.Sentinel {
		d.sentinels, err = redisstore.NewSentinelWatch(*cfg.Redis)
		if err != nil {
			_ = client.Close()
			return nil, fmt.Errorf("redis sentinel: %w", err)
		}
	}
	if err := d.ping(ctx); err != nil {
		logger.Warn("Redis is unreachable at start; serving anyway, decisions fail closed (503) until it answers",
			"redis", cfg.Redis.Describe(), "error", err.Error())
	}
	return d, nil
}

// ping checks Redis and records the outcome, logging changes. In a
// Cluster it pings every master and reports each to its own circuit.
func (d *directory) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, d.pingWithin)
	defer cancel()
	var err error
	if cc, ok := d.client.(*redis.ClusterClient); ok {
		err = d.pingCluster(ctx, cc)
	} else {
		err = d.client.Ping(ctx).Err()
		if err != nil {
			err = fmt.Errorf("ping: %w", err)
		}
		// The probe's success closes an open circuit without waiting for
		// a trial lookup; its failure counts like a failed lookup.
		d.circuits.Circuit("").Report(err)
	}
	next := redisUp
	if err != nil {
		next = redisDown
		d.setLastErr(err)
	}
	prev := d.state.Swap(next)
	switch {
	case prev == redisDown && next == redisUp:
		d.log.Info("Redis is reachable again")
	case prev == redisUp && next == redisDown:
		d.log.Warn("Redis is unreachable; decisions needing it fail closed (503)", "error", err.Error())
	}
	return err
}

// pingCluster pings every master of the (reloaded) slot map, reports each
// outcome to that master's circuit, and drops the circuits of nodes that are
// no longer masters.
func (d *directory) pingCluster(ctx context.Context, cc *redis.ClusterClient) error {
	var mu sync.Mutex
	var errs []error
	masters := []string{""} // lookups whose slot map was unknown
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		addr := c.Options().Addr
		err := c.Ping(ctx).Err()
		if err != nil {
			err = fmt.Errorf("ping %s: %w", addr, err)
		}
		d.circuits.Circuit(addr).Report(err)
		mu.Lock()
		masters = append(masters, addr)
		if err != nil {
			errs = append(errs, err)
		}
		mu.Unlock()
		return err
	})
	if len(masters) > 1 {
		d.circuits.Retain(masters)
	}
	if len(errs) == 0 && err != nil { // no master known at all
		return fmt.Errorf("ping: %w", err)
	}
	return errors.Join(errs...)
}

// start runs the Redis probe and the invalidation listener until close. It
// does nothing for other directories.
func (d *directory) start(ctx context.Context) {
	if d.client == nil && d.origin == nil {
		return
	}
	ctx, d.stop = context.WithCancel(context.WithoutCancel(ctx))
	if d.origin != nil {
		// The origin's change feed replaces Redis's invalidation channel,
		// on which nobody publishes when the record is elsewhere.
		d.origin.start(ctx, &d.wg)
		if d.client != nil {
			d.startProbe(ctx)
		}
		return
	}
	// The listener subscribes, which may wait for a Redis that is down,
	// off the start-up path.
	d.listener = &listener{
		open:      subscriber(d.client, d.sentinels, d.channel, d.pingWithin),
		cache:     d.cache,
		normalize: d.normalize,
		log:       d.log,
		logs:      d.logs,
	}
	if d.subjectCache != nil {
		d.listener.subjects = d.subjectCache
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.listener.run(ctx)
	}()
	if d.sentinels != nil {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.sentinels.Watch(ctx, func(addr string) {
				d.log.Info("Sentinel switched the master; moving the invalidation subscription", "master", addr)
				d.listener.switched(addr)
			})
		}()
	}
	d.startProbe(ctx)
}

// startProbe pings Redis every redisProbeInterval until ctx is done.
func (d *directory) startProbe(ctx context.Context) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		t := time.NewTicker(redisProbeInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_ = d.ping(ctx) // the outcome is recorded and logged by ping
			}
		}
	}()
}

// status reports the directory's state for /readyz?verbose: ok, and a short
// description.
func (d *directory) status() (bool, string) {
	if d.origin != nil {
		ok, text := d.origin.status()
		if d.client == nil {
			return ok, "directory origin " + text + "; no Redis: each replica asks the origin itself"
		}
		rok, rtext := d.redisStatus()
		return ok && rok, "directory origin " + text + "; Redis cache " + rtext
	}
	if d.client == nil {
		return true, d.describe
	}
	return d.redisStatus()
}

// redisStatus reports Redis's reachability and its circuits.
func (d *directory) redisStatus() (bool, string) {
	describe := d.describe
	if d.origin != nil {
		describe = string(d.mode)
	}
	closed := true
	circuit := ""
	for _, p := range d.circuits.States() {
		if p.State == userstore.CircuitClosed {
			continue
		}
		closed = false
		circuit += "; circuit " + p.State.String()
		if p.Name != "" {
			circuit += " for " + p.Name
		}
		if p.LastErr != "" {
			circuit += "; last error " + p.LastAt.UTC().Format(time.RFC3339) + ": " + p.LastErr
		}
	}
	if closed {
		circuit = "; circuit closed"
		if lastErr := d.lastPingErr(); lastErr != "" {
			circuit += ": " + lastErr
		}
	}
	cst := userstore.CircuitClosed
	if !closed {
		cst = userstore.CircuitOpen
	}
	down := ": unreachable, decisions fail closed (503) unless a cached entry is recent enough"
	if d.origin != nil {
		down = ": unreachable, lookups go straight to the directory origin"
	}
	switch d.state.Load() {
	case redisUp:
		return cst == userstore.CircuitClosed, describe + ": reachable" + circuit
	case redisDown:
		return false, describe + down + circuit
	default:
		return cst == userstore.CircuitClosed, describe + ": not probed yet" + circuit
	}
}

func (d *directory) setLastErr(err error) {
	d.mu.Lock()
	d.lastErr = err.Error()
	d.mu.Unlock()
}

func (d *directory) lastPingErr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lastErr
}

// close stops the probe and closes the Redis client, once.
func (d *directory) close() error {
	d.closeOnce.Do(func() {
		if d.stop != nil {
			d.stop()
			if d.listener != nil {
				d.listener.close() // unblocks Receive
			}
			d.wg.Wait()
		}
		if d.sentinels != nil {
			_ = d.sentinels.Close()
		}
		if d.origin != nil {
			d.origin.closeFn()
		}
		if d.client != nil {
			if err := d.client.Close(); err != nil {
				d.closeErr = fmt.Errorf("close Redis client: %w", err)
			}
		}
	})
	return d.closeErr
}
