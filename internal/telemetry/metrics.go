package telemetry

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/userstore"
)

// Metric names, as documented in docs/observability.md#metrics.
const (
	MetricDecisions        = "gatehouse_decisions_total"
	MetricDecisionDuration = "gatehouse_decision_duration_seconds"
	MetricChecksInFlight   = "gatehouse_checks_in_flight"
	MetricDirectoryLookups = "gatehouse_directory_lookups_total"
	MetricRedisDuration    = "gatehouse_redis_duration_seconds"
	MetricOriginDuration   = "gatehouse_directory_origin_duration_seconds"
	MetricBuildInfo        = "gatehouse_build_info"
	MetricTokenKeys        = "gatehouse_token_keys_total"
	// OIDC token introspection (docs/oidc.md).
	MetricIntrospections        = "gatehouse_oidc_introspections_total"
	MetricIntrospectionDuration = "gatehouse_oidc_introspection_duration_seconds"
	MetricIntrospectionCache    = "gatehouse_oidc_cache_lookups_total"
	otherReason                 = "other"
	layerRedis                  = "redis"
	layerOrigin                 = "origin"
	outcomeHit, outcomeMiss     = "hit", "miss"
	outcomeError, outcomeOK     = "error", "ok"
	// outcomeInvalid is a record Redis holds but that is malformed
	// (userstore.ErrInvalidRecord): Redis answered, so it is timed as ok.
	outcomeInvalid = "invalid"
)

// latencyBuckets span a decision from a verified-token cache hit (tens of
// microseconds) to a Redis round trip that ends at the proxy's deadline
// (Envoy's ext_authz timeout is typically 0.25 s).
var latencyBuckets = []float64{
	0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
}

// BuildInfo describes the running binary for gatehouse_build_info.
type BuildInfo struct {
	Version, Commit string
}

// results lists the authz.Result values, indexed by their value.
var results = [...]authz.Result{authz.Deny, authz.Allow, authz.Unavailable}

// Metrics holds gatehouse's Prometheus collectors, registered on a registry
// of its own. It is safe for concurrent use. A nil *Metrics records nothing.
type Metrics struct {
	reg *prometheus.Registry

	decisions *prometheus.CounterVec
	// byReason holds the pre-resolved counter of each known reason, for the
	// result that reason comes with (public and allowed: allow;
	// directory_unavailable and provider_unavailable: unavailable; the
	// others: deny).
	byReason map[authz.Reason]resolvedCounter
	duration [len(results)]prometheus.Observer
	inFlight prometheus.Gauge

	lookups  *prometheus.CounterVec
	byLookup map[lookupKey]prometheus.Counter
	redisDur [2]prometheus.Observer // ok, error
	// originDur times the lookups of a directory origin (Meet's
	// database, a gRPC directory service): ok, error.
	originDur [2]prometheus.Observer
	// keys counts the decisions made after a token verified, by the key
	// that verified it (authz.Decision.Key: its kid or position, never the
	// key; at most authz.MaxKeys per token kind): during a rotation it says
	// when the old key stops being used.
	keys *prometheus.CounterVec

	// OIDC introspection (authz/oidc): introspections by outcome and
	// their duration, and the verdict caches' lookups.
	introspections *prometheus.CounterVec
	introspectDur  prometheus.Observer
	oidcCache      *prometheus.CounterVec
	// byOIDC holds the pre-resolved counters of both: CacheLookup runs on
	// every request carrying an OIDC access token.
	byOIDC map[lookupKey]prometheus.Counter
}

type resolvedCounter struct {
	result  authz.Result
	counter prometheus.Counter
}

type lookupKey struct{ layer, outcome string }

// knownLookups are the directory layers and outcomes reported by
// userstore.Cache (layer "cache"), by Metrics.Redis and
// userstore.ReadThrough (layer "redis"; write_error with an origin only)
// and by Metrics.Origin (layer "origin").
var knownLookups = []lookupKey{
	{"cache", outcomeHit}, {"cache", outcomeMiss}, {"cache", "stale"}, {"cache", outcomeInvalid}, {"cache", outcomeError},
	{layerRedis, outcomeHit}, {layerRedis, outcomeMiss}, {layerRedis, outcomeInvalid}, {layerRedis, outcomeError},
	{layerRedis, "write_error"},
	{layerOrigin, outcomeHit}, {layerOrigin, outcomeMiss}, {layerOrigin, outcomeInvalid}, {layerOrigin, outcomeError},
}

// NewMetrics returns Metrics with every gatehouse collector and the Go and
// process collectors registered on a new registry.
func NewMetrics(build BuildInfo) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricDecisions,
			Help: "Decisions made, by result (allow, deny, unavailable) and reason.",
		}, []string{"result", "reason"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: MetricChecksInFlight,
			Help: "Checks being decided now.",
		}),
		keys: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricTokenKeys,
			Help: "Decisions made after a token verified, by the key that verified it (its kid, or #1, #2... by position; never the key).",
		}, []string{"key"}),
		introspections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricIntrospections,
			Help: "OIDC token introspections sent to the provider, by outcome (active, refused, provider_401, error).",
		}, []string{"outcome"}),
		oidcCache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricIntrospectionCache,
			Help: "Lookups of the OIDC introspection verdict caches, by layer (memory, shared) and result (hit, miss, error).",
		}, []string{"layer", "result"}),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricDirectoryLookups,
			Help: "Directory lookups by layer (cache, redis, origin) and outcome (hit, miss, stale, invalid, error, write_error).",
		}, []string{"layer", "outcome"}),
	}
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    MetricDecisionDuration,
		Help:    "Time to decide one check, directory lookups included, by result.",
		Buckets: latencyBuckets,
	}, []string{"result"})
	redisDur := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    MetricRedisDuration,
		Help:    "Duration of one Redis directory lookup, by outcome (ok, error).",
		Buckets: latencyBuckets,
	}, []string{"outcome"})
	originDur := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    MetricOriginDuration,
		Help:    "Duration of one lookup of the directory origin (Meet's database or a gRPC directory service), by outcome (ok, error).",
		Buckets: latencyBuckets,
	}, []string{"outcome"})
	introspectDur := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    MetricIntrospectionDuration,
		Help:    "Duration of one OIDC token introspection (the provider's round trip, and a JWKS fetch when one was due).",
		Buckets: latencyBuckets,
	})
	m.introspectDur = introspectDur
	m.byOIDC = make(map[lookupKey]prometheus.Counter)
	for _, o := range []string{"active", "refused", "provider_401", outcomeError} {
		m.byOIDC[lookupKey{"introspection", o}] = m.introspections.WithLabelValues(o)
	}
	for _, layer := range []string{"memory", "shared"} {
		for _, r := range []string{outcomeHit, outcomeMiss, outcomeError} {
			m.byOIDC[lookupKey{layer, r}] = m.oidcCache.WithLabelValues(layer, r)
		}
	}
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: MetricBuildInfo,
		Help: "Always 1; the labels describe the running binary.",
	}, []string{"version", "commit", "goversion"})
	buildInfo.WithLabelValues(orUnknown(build.Version), orUnknown(build.Commit), runtime.Version()).Set(1)

	m.byReason = make(map[authz.Reason]resolvedCounter)
	for _, r := range authz.Reasons() {
		res := authz.Deny
		switch r {
		case authz.ReasonPublic, authz.ReasonAllowed:
			res = authz.Allow
		case authz.ReasonDirectoryError, authz.ReasonProviderUnavailable:
			res = authz.Unavailable
		}
		m.byReason[r] = resolvedCounter{res, m.decisions.WithLabelValues(res.String(), string(r))}
	}
	for i, r := range results {
		m.duration[i] = duration.WithLabelValues(r.String())
	}
	m.byLookup = make(map[lookupKey]prometheus.Counter, len(knownLookups))
	for _, k := range knownLookups {
		m.byLookup[k] = m.lookups.WithLabelValues(k.layer, k.outcome)
	}
	m.redisDur[0] = redisDur.WithLabelValues(outcomeOK)
	m.redisDur[1] = redisDur.WithLabelValues(outcomeError)
	m.originDur[0] = originDur.WithLabelValues(outcomeOK)
	m.originDur[1] = originDur.WithLabelValues(outcomeError)

	reg.MustRegister(
		m.decisions, duration, m.inFlight, m.lookups, redisDur, originDur, buildInfo, m.keys,
		m.introspections, introspectDur, m.oidcCache,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// Registry returns the registry the metrics are registered on.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		Registry:            m.reg, // promhttp_metric_handler_errors_total
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	})
}

// decided counts one decision and, when timed, its duration. It allocates
// nothing for a known reason with its usual result.
func (m *Metrics) decided(d *authz.Decision, elapsed time.Duration, timed bool) {
	res := d.Result
	if int(res) >= len(results) {
		res = authz.Deny // as the adapters treat it
	}
	if c, ok := m.byReason[d.Reason]; ok && c.result == res {
		c.counter.Inc()
	} else {
		reason := string(d.Reason)
		if !ok {
			// Only reasons of the closed set become labels: a Decider
			// that invents reasons cannot grow the series count.
			reason = otherReason
		}
		m.decisions.WithLabelValues(res.String(), reason).Inc()
	}
	if d.Key != "" {
		m.keys.WithLabelValues(d.Key).Inc()
	}
	if timed {
		m.duration[res].Observe(elapsed.Seconds())
	}
}

// ObserveLookup counts one directory lookup. It has the signature of
// userstore.CacheOptions.OnLookup. Pairs outside the documented set are
// counted all the same: layers and outcomes are constants of gatehouse's
// code, never request data.
func (m *Metrics) ObserveLookup(layer, outcome string) {
	if m == nil {
		return
	}
	if c, ok := m.byLookup[lookupKey{layer, outcome}]; ok {
		c.Inc()
		return
	}
	m.lookups.WithLabelValues(layer, outcome).Inc()
}

// Redis returns origin instrumented as the Redis layer of the directory:
// each lookup is timed (gatehouse_redis_duration_seconds) and counted in
// gatehouse_directory_lookups_total{layer="redis"} as hit (the record
// exists, active or not), miss, invalid or error. Put it between the Redis
// store and the userstore.Cache, so that only lookups that reach Redis are
// seen. A nil *Metrics returns origin itself.
func (m *Metrics) Redis(origin userstore.Directory) userstore.Directory {
	if m == nil {
		return origin
	}
	return &timedDirectory{origin: origin, m: m, layer: layerRedis, dur: &m.redisDur}
}

// Origin returns origin instrumented as the origin layer of the directory
// (Meet's database, a gRPC directory service): each lookup is timed
// (gatehouse_directory_origin_duration_seconds) and counted in
// gatehouse_directory_lookups_total{layer="origin"} as hit (the record
// exists, active or not), miss (the origin does not know it), invalid or
// error. Put it right in front of the origin, so that only lookups that
// reach it are seen. A nil *Metrics returns origin itself.
func (m *Metrics) Origin(origin userstore.Directory) userstore.Directory {
	if m == nil {
		return origin
	}
	return &timedDirectory{origin: origin, m: m, layer: layerOrigin, dur: &m.originDur}
}

// timedDirectory times and counts the lookups of one layer of the
// directory; dur is that layer's histogram by outcome (ok, error).
type timedDirectory struct {
	origin userstore.Directory
	m      *Metrics
	layer  string
	dur    *[2]prometheus.Observer
}

func (d *timedDirectory) Lookup(ctx context.Context, kind userstore.Kind, id string) (userstore.Status, error) {
	start := time.Now()
	st, err := d.origin.Lookup(ctx, kind, id)
	elapsed := time.Since(start).Seconds()
	outcome, dur := outcomeHit, d.dur[0]
	switch {
	case errors.Is(err, userstore.ErrInvalidRecord):
		// The layer answered: an ok duration, an invalid record.
		outcome = outcomeInvalid
	case err != nil:
		outcome, dur = outcomeError, d.dur[1]
	case st == userstore.NotFound:
		outcome = outcomeMiss
	}
	dur.Observe(elapsed)
	d.m.byLookup[lookupKey{d.layer, outcome}].Inc()
	return st, err
}

// Introspected counts one OIDC token introspection and times it. With
// CacheLookup it is the authz/oidc Observer. Outcomes are constants of
// gatehouse's code, never request data.
func (m *Metrics) Introspected(outcome string, d time.Duration) {
	if m == nil {
		return
	}
	if c, ok := m.byOIDC[lookupKey{"introspection", outcome}]; ok {
		c.Inc()
	} else {
		m.introspections.WithLabelValues(outcome).Inc()
	}
	m.introspectDur.Observe(d.Seconds())
}

// CacheLookup counts one lookup of an OIDC verdict cache.
func (m *Metrics) CacheLookup(layer, result string) {
	if m == nil {
		return
	}
	if c, ok := m.byOIDC[lookupKey{layer, result}]; ok {
		c.Inc()
		return
	}
	m.oidcCache.WithLabelValues(layer, result).Inc()
}
