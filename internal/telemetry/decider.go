package telemetry

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/gatehouse-authz/gatehouse/authz"
)

// Decider is authz.Decider, the interface both proxy adapters take.
type Decider = authz.Decider

// The adapters find Record through an optional interface: keep it in step.
var _ authz.Recorder = (*InstrumentedDecider)(nil)

// Options configures an instrumented Decider. The zero value only assigns
// decision ids.
type Options struct {
	// Metrics records decisions (nil: no metrics).
	Metrics *Metrics
	// Tracer starts one span per decision (nil: no tracing, and no
	// OpenTelemetry call on the request path).
	Tracer trace.Tracer
}

// InstrumentedDecider wraps a Decider with decision ids, metrics and traces.
// Both proxy adapters take it as their Decider, so that every protocol is
// counted and traced the same way. It never changes a decision other than by
// setting its DecisionID.
type InstrumentedDecider struct {
	next    Decider
	metrics *Metrics
	tracer  trace.Tracer
}

// NewDecider returns next instrumented as opts says.
func NewDecider(next Decider, opts Options) *InstrumentedDecider {
	return &InstrumentedDecider{next: next, metrics: opts.Metrics, tracer: opts.Tracer}
}

// panicDecision is what a Decide that panicked is counted as; the adapter
// that recovers the panic sends its own internal-error answer.
var panicDecision = authz.Decision{Result: authz.Deny, Reason: authz.ReasonInternalError, Status: http.StatusServiceUnavailable}

// Decide implements Decider: it assigns the decision id, starts the span
// (joined to req's trace context), asks the wrapped Decider with the span in
// ctx (so that directory lookups become child spans), and records the
// outcome. A panic in the wrapped Decider is counted as internal_error,
// closes the span, and goes on to the adapter's own recovery.
func (t *InstrumentedDecider) Decide(ctx context.Context, req *authz.Request) (d authz.Decision) {
	id := NewDecisionID()
	var span trace.Span
	if t.tracer != nil {
		ctx, span = t.startSpan(ctx, req)
	}
	var start time.Time
	if t.metrics != nil {
		t.metrics.inFlight.Inc()
		start = time.Now()
	}
	returned := false
	defer func() {
		if !returned { // panicking: count it, end the span, let it go on
			p := panicDecision
			p.DecisionID = id
			t.finish(span, req, &p, start)
		}
	}()
	d = t.next.Decide(ctx, req)
	returned = true
	d.DecisionID = id
	t.finish(span, req, &d, start)
	return d
}

func (t *InstrumentedDecider) finish(span trace.Span, req *authz.Request, d *authz.Decision, start time.Time) {
	if t.metrics != nil {
		t.metrics.decided(d, time.Since(start), true)
		t.metrics.inFlight.Dec()
	}
	if span != nil {
		endSpan(span, d)
	}
}

// Record gives an id to, and counts, a decision an adapter made without
// calling Decide (a CheckRequest without HTTP attributes). It sets
// d.DecisionID. Its duration is not observed: nothing was decided.
func (t *InstrumentedDecider) Record(_ context.Context, d *authz.Decision) {
	d.DecisionID = NewDecisionID()
	if t.metrics != nil {
		t.metrics.decided(d, 0, false)
	}
}

// NewDecisionID returns a new decision id: 128 random bits as 32 lower-case
// hex digits, like a W3C trace id. The bits come from math/rand/v2's
// top-level source, a per-thread ChaCha8 generator seeded by the runtime
// from the operating system's entropy: lock-free, so ids cost no contention,
// and unique for every practical purpose. Ids are not secrets; they only
// need to be unique and unguessable enough not to collide.
func NewDecisionID() string {
	var raw [16]byte
	binary.LittleEndian.PutUint64(raw[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(raw[8:], rand.Uint64())
	var out [32]byte
	hex.Encode(out[:], raw[:])
	return string(out[:])
}
