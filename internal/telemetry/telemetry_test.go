package telemetry

import (
	"context"
	"errors"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/userstore"
)

// stubDecider answers with a fixed decision, after one directory lookup
// when dir is set.
type stubDecider struct {
	d   authz.Decision
	dir userstore.Directory
}

func (s stubDecider) Decide(ctx context.Context, _ *authz.Request) authz.Decision {
	if s.dir != nil {
		_, _ = s.dir.Lookup(ctx, userstore.User, "u1")
	}
	return s.d
}

type panicDecider struct{}

func (panicDecider) Decide(context.Context, *authz.Request) authz.Decision { panic("boom") }

// value returns the value of the counter, gauge or histogram count of the
// series name{labels}, and whether it exists.
func value(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			if len(got) != len(labels) {
				continue
			}
			for k, v := range labels {
				if got[k] != v {
					continue metrics
				}
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue(), true
			case dto.MetricType_GAUGE:
				return m.GetGauge().GetValue(), true
			case dto.MetricType_HISTOGRAM:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

func wantValue(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string, want float64) {
	t.Helper()
	got, ok := value(t, reg, name, labels)
	if !ok {
		t.Errorf("%s%v: no such series", name, labels)
		return
	}
	if got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

var allowed = authz.Decision{Result: authz.Allow, Reason: authz.ReasonAllowed, Status: 200,
	Identity: authz.Identity{UserID: "user-1", ClientID: "app-1", Scope: "rooms:list"}}

func TestDecisionMetrics(t *testing.T) {
	m := NewMetrics(BuildInfo{Version: "v1.2.3", Commit: "abc"})
	reg := m.Registry()
	// Every known reason has its series from the start, at zero.
	wantValue(t, reg, MetricDecisions, map[string]string{"result": "deny", "reason": "user_disabled"}, 0)
	wantValue(t, reg, MetricDecisions, map[string]string{"result": "unavailable", "reason": "directory_unavailable"}, 0)

	decide := func(d authz.Decision) authz.Decision {
		return NewDecider(stubDecider{d: d}, Options{Metrics: m}).Decide(context.Background(), &authz.Request{})
	}
	decide(allowed)
	decide(allowed)
	decide(authz.Decision{Result: authz.Deny, Reason: authz.ReasonTokenExpired, Status: 401})
	decide(authz.Decision{Result: authz.Unavailable, Reason: authz.ReasonDirectoryError, Status: 503})
	// An unusual pairing still counts under its own result.
	decide(authz.Decision{Result: authz.Unavailable, Reason: authz.ReasonInternalError, Status: 503})
	// A reason outside the closed set becomes "other", never a new label.
	decide(authz.Decision{Result: authz.Deny, Reason: "attacker-chosen-\u2603", Status: 403})

	wantValue(t, reg, MetricDecisions, map[string]string{"result": "allow", "reason": "allowed"}, 2)
	wantValue(t, reg, MetricDecisions, map[string]string{"result": "deny", "reason": "token_expired"}, 1)
	wantValue(t, reg, MetricDecisions, map[string]string{"result": "unavailable", "reason": "directory_unavailable"}, 1)
	wantValue(t, reg, MetricDecisions, map[string]string{"result": "unavailable", "reason": "internal_error"}, 1)
	wantValue(t, reg, MetricDecisions, map[string]string{"result": "deny", "reason": "other"}, 1)
	wantValue(t, reg, MetricDecisionDuration, map[string]string{"result": "allow"}, 2)
	wantValue(t, reg, MetricDecisionDuration, map[string]string{"result": "deny"}, 2)
	wantValue(t, reg, MetricChecksInFlight, map[string]string{}, 0)
	wantValue(t, reg, MetricBuildInfo, map[string]string{"version": "v1.2.3", "commit": "abc", "goversion": goVersion()}, 1)
	if _, ok := value(t, reg, "go_goroutines", map[string]string{}); !ok {
		t.Error("no Go collector")
	}

	// No label value anywhere holds an identity.
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			for _, lp := range mt.GetLabel() {
				if v := lp.GetValue(); strings.Contains(v, "user-1") || strings.Contains(v, "app-1") || strings.Contains(v, "\u2603") {
					t.Errorf("%s has label %s=%q", mf.GetName(), lp.GetName(), v)
				}
			}
		}
	}
}

func TestMetricsPerInstance(t *testing.T) {
	a, b := NewMetrics(BuildInfo{}), NewMetrics(BuildInfo{})
	NewDecider(stubDecider{d: allowed}, Options{Metrics: a}).Decide(context.Background(), &authz.Request{})
	wantValue(t, a.Registry(), MetricDecisions, map[string]string{"result": "allow", "reason": "allowed"}, 1)
	wantValue(t, b.Registry(), MetricDecisions, map[string]string{"result": "allow", "reason": "allowed"}, 0)
	wantValue(t, b.Registry(), MetricBuildInfo, map[string]string{"version": "unknown", "commit": "unknown", "goversion": goVersion()}, 1)
}

func TestPanicIsCountedAndPropagates(t *testing.T) {
	m := NewMetrics(BuildInfo{})
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	d := NewDecider(panicDecider{}, Options{Metrics: m, Tracer: Tracer(tp)})
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Errorf("recovered %v, want the original panic", p)
			}
		}()
		d.Decide(context.Background(), &authz.Request{})
	}()
	wantValue(t, m.Registry(), MetricDecisions, map[string]string{"result": "deny", "reason": "internal_error"}, 1)
	wantValue(t, m.Registry(), MetricChecksInFlight, map[string]string{}, 0)
	if spans := exp.GetSpans(); len(spans) != 1 || spans[0].EndTime.IsZero() {
		t.Errorf("spans after a panic = %d, want 1 ended span", len(spans))
	}
}

func TestRecord(t *testing.T) {
	m := NewMetrics(BuildInfo{})
	d := authz.Decision{Result: authz.Deny, Reason: authz.ReasonBadRequest, Status: 401}
	NewDecider(stubDecider{}, Options{Metrics: m}).Record(context.Background(), &d)
	if !decisionIDPattern.MatchString(d.DecisionID) {
		t.Errorf("DecisionID = %q", d.DecisionID)
	}
	wantValue(t, m.Registry(), MetricDecisions, map[string]string{"result": "deny", "reason": "bad_request"}, 1)
}

var decisionIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestDecisionIDs(t *testing.T) {
	d := NewDecider(stubDecider{d: allowed}, Options{})
	const n = 10000
	seen := make(map[string]bool, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range n / 4 {
				id := d.Decide(context.Background(), &authz.Request{}).DecisionID
				mu.Lock()
				if !decisionIDPattern.MatchString(id) || seen[id] {
					t.Errorf("id %q: malformed or repeated", id)
				}
				seen[id] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != n {
		t.Errorf("%d distinct ids for %d decisions", len(seen), n)
	}
}

// fakeOrigin answers from a map, or fails when err is set.
type fakeOrigin struct {
	records map[string]userstore.Status
	err     error
}

func (f *fakeOrigin) Lookup(_ context.Context, _ userstore.Kind, id string) (userstore.Status, error) {
	if f.err != nil {
		return userstore.NotFound, f.err
	}
	return f.records[id], nil
}

func TestDirectoryLookupMetrics(t *testing.T) {
	m := NewMetrics(BuildInfo{})
	origin := &fakeOrigin{records: map[string]userstore.Status{"a": userstore.Active, "i": userstore.Inactive}}
	cache := userstore.NewCache(m.Redis(origin), userstore.CacheOptions{OnLookup: m.ObserveLookup})
	ctx := context.Background()
	for _, id := range []string{"a", "a", "i", "nobody"} {
		if _, err := cache.Lookup(ctx, userstore.User, id); err != nil {
			t.Fatal(err)
		}
	}
	origin.err = errors.Join(userstore.ErrUnavailable, errors.New("redis down"))
	if _, err := cache.Lookup(ctx, userstore.User, "new"); err == nil {
		t.Fatal("lookup through a failing origin succeeded")
	}
	reg := m.Registry()
	wantValue(t, reg, MetricDirectoryLookups, map[string]string{"layer": "cache", "outcome": "hit"}, 1)
	wantValue(t, reg, MetricDirectoryLookups, map[string]string{"layer": "cache", "outcome": "miss"}, 3)
	wantValue(t, reg, MetricDirectoryLookups, map[string]string{"layer": "cache", "outcome": "error"}, 1)
	wantValue(t, reg, MetricDirectoryLookups, map[string]string{"layer": "redis", "outcome": "hit"}, 2)
	wantValue(t, reg, MetricDirectoryLookups, map[string]string{"layer": "redis", "outcome": "miss"}, 1)
	wantValue(t, reg, MetricDirectoryLookups, map[string]string{"layer": "redis", "outcome": "error"}, 1)
	wantValue(t, reg, MetricRedisDuration, map[string]string{"outcome": "ok"}, 3)
	wantValue(t, reg, MetricRedisDuration, map[string]string{"outcome": "error"}, 1)

	var none *Metrics
	if none.Redis(origin) != userstore.Directory(origin) {
		t.Error("nil Metrics wrapped the origin")
	}
	none.ObserveLookup("cache", "hit") // must not panic
}

const (
	callerTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpan   = "00f067aa0ba902b7"
	secretToken  = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoic2VjcmV0In0.c2lnbmF0dXJl"
	secretInPath = "access_token=" + secretToken
)

func TestTracing(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	tracer := Tracer(tp)
	dir := TraceDirectory(&fakeOrigin{records: map[string]userstore.Status{"u1": userstore.Active}}, tracer)
	d := NewDecider(stubDecider{d: allowed, dir: dir}, Options{Tracer: tracer})

	got := d.Decide(context.Background(), &authz.Request{
		Method: "GET", Path: "/v1/rooms?" + secretInPath, Host: "api.example.com",
		Authorization: "Bearer " + secretToken,
		TraceParent:   "00-" + callerTrace + "-" + callerSpan + "-01",
		TraceState:    "vendor=opaque",
	})

	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want the check and its lookup", len(spans))
	}
	var check, lookup tracetest.SpanStub
	for _, s := range spans {
		switch s.Name {
		case SpanCheck:
			check = s
		case SpanLookup:
			lookup = s
		}
	}
	if check.SpanContext.TraceID().String() != callerTrace {
		t.Errorf("check trace id %s, want the caller's %s", check.SpanContext.TraceID(), callerTrace)
	}
	if check.Parent.SpanID().String() != callerSpan || !check.Parent.IsRemote() {
		t.Errorf("check parent %s (remote %v), want the caller's span %s", check.Parent.SpanID(), check.Parent.IsRemote(), callerSpan)
	}
	if check.SpanContext.TraceState().Get("vendor") != "opaque" {
		t.Errorf("tracestate not carried: %q", check.SpanContext.TraceState().String())
	}
	if check.SpanKind != trace.SpanKindServer {
		t.Errorf("check kind %v", check.SpanKind)
	}
	if lookup.Parent.SpanID() != check.SpanContext.SpanID() || lookup.SpanContext.TraceID() != check.SpanContext.TraceID() {
		t.Errorf("lookup span is not a child of the check span")
	}

	attrs := map[string]string{}
	for _, s := range spans {
		for _, kv := range s.Attributes {
			v := kv.Value.String()
			attrs[string(kv.Key)] = v
			for _, secret := range []string{secretToken, "Bearer", "user-1", "app-1", "rooms:list", "access_token"} {
				if strings.Contains(v, secret) {
					t.Errorf("span %s attribute %s=%q holds %q", s.Name, kv.Key, v, secret)
				}
			}
		}
	}
	for k, want := range map[string]string{
		AttrResult: "allow", AttrReason: "allowed", AttrDecisionID: got.DecisionID,
		attrMethod: "GET", attrPath: "/v1/rooms", attrHTTPStatus: "200",
		AttrKind: "user", AttrStatus: "active",
	} {
		if attrs[k] != want {
			t.Errorf("attribute %s = %q, want %q", k, attrs[k], want)
		}
	}
}

func TestTracingWithoutCaller(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	d := NewDecider(stubDecider{d: allowed}, Options{Tracer: Tracer(tp)})
	for _, tp := range []string{"", "garbage", "00-00000000000000000000000000000000-0000000000000000-01"} {
		d.Decide(context.Background(), &authz.Request{Method: "BREW", Path: "/", TraceParent: tp})
	}
	spans := exp.GetSpans()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want 3", len(spans))
	}
	for _, s := range spans {
		if s.Parent.IsValid() {
			t.Errorf("span has parent %v without a valid traceparent", s.Parent)
		}
		for _, kv := range s.Attributes {
			if kv.Key == attrMethod && kv.Value.AsString() != "_OTHER" {
				t.Errorf("method attribute %q, want _OTHER", kv.Value.AsString())
			}
		}
	}
}

func TestTracingOffLeavesDirectory(t *testing.T) {
	dir := &fakeOrigin{}
	if TraceDirectory(dir, nil) != userstore.Directory(dir) {
		t.Error("TraceDirectory wrapped the directory with tracing off")
	}
	if Tracer(nil) != nil {
		t.Error("Tracer(nil) is not nil")
	}
}

// TestDecideAllocs: with metrics and without tracing, the wrapper allocates
// only the decision id's string.
func TestDecideAllocs(t *testing.T) {
	d := NewDecider(stubDecider{d: allowed}, Options{Metrics: NewMetrics(BuildInfo{})})
	req := &authz.Request{Method: "GET", Path: "/"}
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() { d.Decide(ctx, req) }); n > 1 {
		t.Errorf("%v allocations per decision, want at most 1 (the id)", n)
	}
}

func TestPathAttr(t *testing.T) {
	for in, want := range map[string]string{
		"/a?b=c":                       "/a",
		"/a#frag":                      "/a",
		"/caf\xe9":                     "/caf\uFFFD",
		"/" + strings.Repeat("x", 999): "/" + strings.Repeat("x", maxPathAttr-1),
	} {
		if got := pathAttr(in); got != want {
			t.Errorf("pathAttr(%q) = %q, want %q", in, got, want)
		}
	}
}

func goVersion() string { return runtime.Version() }

// TestOIDCCounters: the OIDC observer counts into the series it names.
func TestOIDCCounters(t *testing.T) {
	m := NewMetrics(BuildInfo{})
	m.Introspected("active", time.Millisecond)
	m.CacheLookup("shared", "hit")
	m.CacheLookup("shared", "hit")
	if got := counterValue(t, m.oidcCache.WithLabelValues("shared", "hit")); got != 2 {
		t.Fatalf("shared hits %v, want 2", got)
	}
	if got := counterValue(t, m.introspections.WithLabelValues("active")); got != 1 {
		t.Fatalf("active introspections %v, want 1", got)
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var pb dto.Metric
	if err := c.Write(&pb); err != nil {
		t.Fatal(err)
	}
	return pb.GetCounter().GetValue()
}
