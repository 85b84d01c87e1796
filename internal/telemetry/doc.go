// Package telemetry instruments gatehouse: Prometheus metrics on the ops
// listener, OpenTelemetry traces, and the decision id that ties a client's
// denial to a log line and a trace.
//
// Everything hangs off values the server creates and passes down: a Metrics
// owns its own prometheus.Registry and a traced Decider takes its
// trace.Tracer explicitly. Nothing registers with prometheus.DefaultRegisterer
// or the otel global provider, so two servers in one process (tests) never
// share a series or a span.
//
// Privacy and cardinality rationale:
//   - Metric labels come from closed sets (authz.Result, authz.Reason, the
//     directory's layers and outcomes); no label ever holds request data, so
//     an attacker cannot grow the series count and no identifier leaks into
//     a metrics backend.
//   - Span attributes hold the method, the path without its query string (a
//     query may carry a token), the result, the reason, the status and the
//     decision id. They never hold the Authorization header, the token, its
//     claims, or the user and client ids: traces often travel to third-party
//     backends with long retention. The decision id on the span leads to the
//     decision's log line, which has the ids.
//
// The hot path stays cheap: counter children are resolved once, at NewMetrics,
// so a decision costs a map lookup and a few atomic adds; with tracing off the
// Decider does not touch OpenTelemetry at all.
package telemetry
