package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/go-logr/logr"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/userstore"
)

// Span names and attribute keys. Keys follow the OpenTelemetry semantic
// conventions where one exists.
const (
	SpanCheck  = "gatehouse.Check"
	SpanLookup = "gatehouse.directory.Lookup"

	AttrResult     = "gatehouse.result"
	AttrReason     = "gatehouse.reason"
	AttrDecisionID = "gatehouse.decision_id"
	AttrKind       = "gatehouse.directory.kind"
	AttrStatus     = "gatehouse.directory.status"
	attrMethod     = "http.request.method"
	attrPath       = "url.path"
	attrHTTPStatus = "http.response.status_code"
	attrErrorType  = "error.type"

	// TracerName is the instrumentation scope of gatehouse's spans.
	TracerName = "github.com/gatehouse-authz/gatehouse"

	// maxPathAttr bounds the url.path attribute: a path is client data.
	maxPathAttr = 256
)

// TracingConfig configures the OTLP trace exporter.
type TracingConfig struct {
	// Endpoint is the OTLP gRPC collector, host:port (otel-collector:4317)
	// or a URL (http://otel-collector:4317; http means no TLS).
	Endpoint string
	// Insecure turns TLS off for a host:port endpoint.
	Insecure bool
	// SampleRatio is the fraction of new traces sampled, in [0, 1]; a
	// caller's sampled flag (traceparent) is always followed.
	SampleRatio float64
	// Version is the service.version resource attribute.
	Version string
}

// NewTracerProvider returns a provider that batches spans to the OTLP gRPC
// endpoint of cfg. The connection is made lazily, so a collector that is
// down does not stop gatehouse; spans are dropped meanwhile. The caller must
// Shutdown the provider to flush pending spans. The provider is not
// installed as the otel global.
func NewTracerProvider(ctx context.Context, cfg TracingConfig) (*sdktrace.TracerProvider, error) {
	if cfg.Endpoint == "" {
		return nil, errors.New("tracing: no OTLP endpoint")
	}
	if cfg.SampleRatio < 0 || cfg.SampleRatio > 1 {
		return nil, fmt.Errorf("tracing: sample ratio %v is not in [0, 1]", cfg.SampleRatio)
	}
	var opts []otlptracegrpc.Option
	if strings.Contains(cfg.Endpoint, "://") {
		opts = append(opts, otlptracegrpc.WithEndpointURL(cfg.Endpoint))
	} else {
		opts = append(opts, otlptracegrpc.WithEndpoint(cfg.Endpoint))
	}
	if cfg.Insecure {
		opts = append(opts, otlptracegrpc.WithInsecure())
	}
	exp, err := otlptracegrpc.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	res := resource.NewSchemaless(
		attribute.String("service.name", "gatehouse"),
		attribute.String("service.version", orUnknown(cfg.Version)),
	)
	return sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
	), nil
}

// RouteOTelErrors sends what the OpenTelemetry SDK and its OTLP exporter
// report (failed or dropped exports, bad OTEL_* variables) to logger, with
// component=otel, instead of the standard library's log package, which
// prints bare lines on stderr. Export errors are logged at warn: tracing is
// best effort, and the decisions go on without it.
//
// OpenTelemetry reads its error handler and its logger from process-wide
// variables, from the exporter's own goroutines; there is no per-provider
// option. So the process calls this once, at start (cmd/gatehouse serve),
// before creating a tracer provider; a later call replaces the destination
// (both variables are swapped atomically).
func RouteOTelErrors(logger *slog.Logger) {
	l := logger.With("component", "otel")
	otel.SetErrorHandler(otelErrorHandler{l})
	// The SDK's errors log at error; its warnings (V(1): dropped span
	// attributes or events) just below info, so at debug only; its
	// informational lines (V(4) and up) at debug or not at all.
	otel.SetLogger(logr.FromSlogHandler(l.Handler()))
}

type otelErrorHandler struct{ log *slog.Logger }

// Handle logs err's text: the exporter's errors name the endpoint and the
// gRPC status, never the OTLP headers (which may hold credentials).
func (h otelErrorHandler) Handle(err error) {
	h.log.Warn("OpenTelemetry error", "error", err.Error())
}

// Tracer returns gatehouse's tracer from tp, or nil when tp is nil
// (tracing off).
func Tracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		return nil
	}
	return tp.Tracer(TracerName)
}

// traceHeaders carries a request's W3C trace context headers to the
// propagator.
type traceHeaders struct{ parent, state string }

func (h *traceHeaders) Get(key string) string {
	switch key {
	case "traceparent":
		return h.parent
	case "tracestate":
		return h.state
	}
	return ""
}

func (h *traceHeaders) Set(string, string) {}

func (h *traceHeaders) Keys() []string { return []string{"traceparent", "tracestate"} }

// startSpan starts the decision's span, a child of the caller's span when
// req carries a valid traceparent.
func (t *InstrumentedDecider) startSpan(ctx context.Context, req *authz.Request) (context.Context, trace.Span) {
	if req.TraceParent != "" {
		ctx = propagation.TraceContext{}.Extract(ctx, &traceHeaders{req.TraceParent, req.TraceState})
	}
	ctx, span := t.tracer.Start(ctx, SpanCheck, trace.WithSpanKind(trace.SpanKindServer))
	// Attributes are added after Start, and only to a sampled span: the
	// samplers gatehouse uses do not read them, and an unsampled span then
	// costs no attribute work.
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String(attrMethod, methodAttr(req.Method)),
			attribute.String(attrPath, pathAttr(req.Path)),
		)
	}
	return ctx, span
}

// endSpan records the decision on its span and ends it. Denies are not span
// errors (the client was refused, gatehouse worked); a 5xx is.
func endSpan(span trace.Span, d *authz.Decision) {
	if !span.IsRecording() { // not sampled: skip building attributes
		span.End()
		return
	}
	span.SetAttributes(
		attribute.String(AttrResult, d.Result.String()),
		attribute.String(AttrReason, string(d.Reason)),
		attribute.Int(attrHTTPStatus, d.Status),
		attribute.String(AttrDecisionID, d.DecisionID),
	)
	if d.Status >= 500 || d.Result == authz.Unavailable {
		span.SetStatus(codes.Error, string(d.Reason))
	}
	span.End()
}

// methodAttr returns a standard method as is and "_OTHER" otherwise, as the
// semantic conventions ask: the method is client data.
func methodAttr(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "_OTHER"
}

// pathAttr returns the path without query string or fragment (they may carry
// tokens), bounded in length and made valid UTF-8.
func pathAttr(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	if len(p) > maxPathAttr {
		p = p[:maxPathAttr]
	}
	if !utf8.ValidString(p) {
		p = strings.ToValidUTF8(p, "\uFFFD")
	}
	return p
}

// TraceDirectory returns dir with one child span per lookup, under the span
// found in the lookup's ctx. With a nil tracer it returns dir itself.
func TraceDirectory(dir userstore.Directory, tracer trace.Tracer) userstore.Directory {
	if tracer == nil {
		return dir
	}
	return &tracedDirectory{dir: dir, tracer: tracer}
}

type tracedDirectory struct {
	dir    userstore.Directory
	tracer trace.Tracer
}

func (d *tracedDirectory) Lookup(ctx context.Context, kind userstore.Kind, id string) (userstore.Status, error) {
	ctx, span := d.tracer.Start(ctx, SpanLookup,
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(attribute.String(AttrKind, kind.String())))
	defer span.End()
	st, err := d.dir.Lookup(ctx, kind, id)
	if err != nil {
		// The error's text is not recorded: a directory error may name
		// the key it looked up, and keys hold user ids.
		span.SetAttributes(attribute.String(attrErrorType, lookupErrorType(err)))
		span.SetStatus(codes.Error, "directory unavailable")
		return st, err
	}
	span.SetAttributes(attribute.String(AttrStatus, st.String()))
	return st, nil
}

func lookupErrorType(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline_exceeded"
	case errors.Is(err, context.Canceled):
		return "canceled"
	default:
		return "unavailable"
	}
}
