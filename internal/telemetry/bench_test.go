package telemetry

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/gatehouse-authz/gatehouse/authz"
)

// BenchmarkDecide measures what the wrapper adds to a decision: compare each
// case with "bare" (the stub decider alone, which costs a few ns).
func BenchmarkDecide(b *testing.B) {
	inner := stubDecider{d: allowed}
	req := &authz.Request{Method: "GET", Path: "/v1/rooms",
		TraceParent: "00-" + callerTrace + "-" + callerSpan + "-01"}
	sampled := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewNoopExporter()))
	notSampled := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	b.Cleanup(func() {
		_ = sampled.Shutdown(context.Background())
		_ = notSampled.Shutdown(context.Background())
	})
	cases := []struct {
		name string
		d    Decider
	}{
		{"bare", inner},
		{"ids", NewDecider(inner, Options{})},
		{"metrics", NewDecider(inner, Options{Metrics: NewMetrics(BuildInfo{})})},
		{"metrics+noop-tracer", NewDecider(inner, Options{Metrics: NewMetrics(BuildInfo{}), Tracer: noop.NewTracerProvider().Tracer("")})},
		{"metrics+sdk-tracer-unsampled", NewDecider(inner, Options{Metrics: NewMetrics(BuildInfo{}), Tracer: Tracer(notSampled)})},
		{"metrics+sdk-tracer-sampled", NewDecider(inner, Options{Metrics: NewMetrics(BuildInfo{}), Tracer: Tracer(sampled)})},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				c.d.Decide(ctx, req)
			}
		})
		b.Run(c.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					c.d.Decide(ctx, req)
				}
			})
		})
	}
}
