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
	"github.com/gatehouse-authz/gatehouse/internal/config"
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
func newDirectory(ctx context.Context, cfg config.Config, logger *slog.Logger, opts Options) (*directory, error) {
	switch {
	case opts.Directory != nil:
		name := opts.DirectoryName
		if name == "" {
			name = "supplied directory"
		}
		return &directory{Directory: opts.Directory, describe: name}, nil
	case cfg.UsersFile != "":
		m, err := userstore.LoadFile(cfg.UsersFile, userstore.MemoryOptions{NormalizeUserID: userIDNormalizer(cfg)})
		if err != nil {
			return nil, err
		}
		return &directory{
			Directory: m,
			describe:  fmt.Sprintf("users file %s (%d users)", cfg.UsersFile, m.Len(userstore.User)),
		}, nil
	case cfg.UsesRedis():
		return newRedisDirectory(ctx, cfg, logger, opts.metrics)
	default:
		return nil, errors.New("no user directory configured")
	}
}

// userIDNormalizer returns the function that gives user ids the form the
// decision core looks them up in, or nil when ids are opaque.
func userIDNormalizer(cfg config.Config) func(string) (string, bool) {
	if cfg.IDFormat() == authz.IDFormatUUID {
		return authz.NormalizeUUID
	}
	return nil
}

// newRedisDirectory connects to Redis lazily: a Redis that is down now is
// logged, not refused, and lookups fail closed until it answers.
// metrics (nil: none) counts and times the Redis lookups and the cache's
// outcomes.
func newRedisDirectory(ctx context.Context, cfg config.Config, logger *slog.Logger, metrics *telemetry.Metrics) (*directory, error) {
	client, mode, err := NewRedisClient(cfg)
	if err != nil {
		return nil, err
	}
	store := redisstore.New(client, redisstore.Options{Prefix: cfg.RedisPrefix, Timeout: cfg.RedisTimeout})
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
	// Directory warnings that can come once per request (stale entries,
	// invalid records, malformed invalidation messages) share one budget
	// of GATEHOUSE_LOG_RATE lines a second.
	logs := logbudget.New(zeroMeansNone(cfg.LogRate))
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
		describe:   "redis " + string(mode) + " " + cfg.DescribeRedis(),
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
		cc, err := cfg.RedisClientConfig()
		if err == nil {
			d.sentinels, err = redisstore.NewSentinelWatch(cc)
		}
		if err != nil {
			_ = client.Close()
			return nil, fmt.Errorf("Redis Sentinel: %w", err)
		}
	}
	if err := d.ping(ctx); err != nil {
		logger.Warn("Redis is unreachable at start; serving anyway, decisions fail closed (503) until it answers",
			"redis", cfg.DescribeRedis(), "error", err.Error())
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
	if d.client == nil {
		return
	}
	ctx, d.stop = context.WithCancel(context.WithoutCancel(ctx))
	// The listener subscribes, which may wait for a Redis that is down,
	// off the start-up path.
	d.listener = &listener{
		open:      subscriber(d.client, d.sentinels, d.channel, d.pingWithin),
		cache:     d.cache,
		normalize: d.normalize,
		log:       d.log,
		logs:      d.logs,
	}
	d.wg.Add(2)
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
	if d.client == nil {
		return true, d.describe
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
	switch d.state.Load() {
	case redisUp:
		return cst == userstore.CircuitClosed, d.describe + ": reachable" + circuit
	case redisDown:
		return false, d.describe + ": unreachable, decisions fail closed (503) unless a cached entry is recent enough" + circuit
	default:
		return cst == userstore.CircuitClosed, d.describe + ": not probed yet" + circuit
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
		if d.client != nil {
			if err := d.client.Close(); err != nil {
				d.closeErr = fmt.Errorf("close Redis client: %w", err)
			}
		}
	})
	return d.closeErr
}

// RouteRedisLogs sends go-redis's internal log lines (dial retries, pool
// events) to logger at debug level instead of go-redis's own stderr logger,
// so that every line the process writes is structured. gatehouse reports
// Redis trouble itself, at warning level, from its probe and its lookups.
//
// go-redis keeps its logger in a process-wide variable: call this once, from
// main, before any Redis client is used.
func RouteRedisLogs(logger *slog.Logger) {
	redis.SetLogger(redisLogger{logger})
}

type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	if l.log.Enabled(ctx, slog.LevelDebug) {
		l.log.DebugContext(ctx, fmt.Sprintf(format, v...), "source", "go-redis")
	}
}
