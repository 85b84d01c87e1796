package telemetry

import (
	"errors"
	"log/slog"
	"testing"

	"go.opentelemetry.io/otel"

	"github.com/gatehouse-authz/gatehouse/internal/testkit"
)

// TestRouteOTelErrors: what OpenTelemetry reports through its process-wide
// error handler goes to the given logger as a structured line. (The real
// exporter's errors, over a socket, are checked end to end by
// cmd/gatehouse's TestServeLogsLibraryErrorsAsJSON.)
func TestRouteOTelErrors(t *testing.T) {
	var logs testkit.LogBuffer
	RouteOTelErrors(testkit.NewLoggerAt(&logs, slog.LevelInfo))
	// The hooks are process-wide: leave them pointing nowhere.
	t.Cleanup(func() { RouteOTelErrors(slog.New(slog.DiscardHandler)) })

	otel.Handle(errors.New("traces export: connection refused"))
	lines := logs.Lines(t)
	if len(lines) != 1 {
		t.Fatalf("%d lines, want 1:\n%s", len(lines), logs.String())
	}
	l := lines[0]
	if l["level"] != "WARN" || l["msg"] != "OpenTelemetry error" || l["component"] != "otel" ||
		l["error"] != "traces export: connection refused" {
		t.Errorf("line %v", l)
	}
}
