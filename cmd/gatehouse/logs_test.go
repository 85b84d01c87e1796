package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/gatehouse-authz/gatehouse/internal/testkit"
)

// closedPort returns a loopback address nothing listens on: a Redis or an
// OTLP collector that is down.
func closedPort(t *testing.T) string {
	t.Helper()
	port, err := testkit.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}

// TestUsersCommandPrintsNoBareRedisLines: with Redis down, "gatehouse users"
// prints its "gatehouse: " error line, and go-redis's own pool errors
// ("redis: connection pool: failed to dial") do not reach stderr as bare
// lines.
func TestUsersCommandPrintsNoBareRedisLines(t *testing.T) {
	r := gatehouse(t, baseEnv("GATEHOUSE_REDIS_URL=redis://"+closedPort(t)+"/0"),
		"users", "get", "3f2504e0-4f89-11d3-9a0c-0305e82c3301")
	if r.code != exitUsage {
		t.Fatalf("users get with Redis down: code %d, want %d\n%s", r.code, exitUsage, r.stderr)
	}
	for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		if !strings.HasPrefix(line, "gatehouse: ") && !json.Valid([]byte(line)) {
			t.Errorf("bare line on stderr: %s", line)
		}
	}
	if !strings.Contains(r.stderr, "gatehouse: ") || !strings.Contains(r.stderr, "connection refused") {
		t.Errorf("no \"gatehouse: \" line naming the failure:\n%s", r.stderr)
	}
}

// TestServeLogsLibraryErrorsAsJSON: the lines go-redis and the OTLP
// exporter write about a Redis and a collector that are down reach the
// JSON log, each with its component, and nothing else reaches stderr; the
// OTLP headers (credentials) are never logged.
func TestServeLogsLibraryErrorsAsJSON(t *testing.T) {
	const otlpSecret = "otlp-credential-4f1d"
	env := baseEnv(
		"GATEHOUSE_JWT_SECRET_FILE="+testkit.WriteFile(t, "secret", "logs-test-secret-0123456789abcdef\n"),
		"GATEHOUSE_REDIS_URL=redis://"+closedPort(t)+"/0",
		"GATEHOUSE_GRPC_ADDR=127.0.0.1:0",
		"GATEHOUSE_OPS_ADDR=127.0.0.1:0",
		"GATEHOUSE_LOG_LEVEL=debug",
		"GATEHOUSE_OTEL_ENDPOINT="+closedPort(t),
		"GATEHOUSE_OTEL_INSECURE=true",
		// Export every 50ms and give up on an export after 300ms, so that
		// the exporter's error comes within the test's bound.
		"OTEL_BSP_SCHEDULE_DELAY=50",
		"OTEL_EXPORTER_OTLP_TIMEOUT=300",
		"OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20"+otlpSecret,
	)
	s := startServe(t, env)
	addr := s.waitFor(t, s.stderr, regexp.MustCompile(`"msg":"listening","grpc":"(127\.0\.0\.1:\d+)"`))[1]
	// A decision, and so a span to export.
	if r := gatehouse(t, baseEnv(), "check", "--addr", addr, "--token", "not-a-token"); r.code != exitFail {
		t.Fatalf("check: code %d, want a deny (%d)\n%s%s", r.code, exitFail, r.stdout, r.stderr)
	}
	s.waitFor(t, s.stderr, regexp.MustCompile(`"msg":"OpenTelemetry error","component":"otel"`))
	s.waitFor(t, s.stderr, regexp.MustCompile(`"source":"go-redis"`))
	if code := s.terminate(t); code != 0 {
		t.Errorf("serve exited %d after SIGTERM, want 0", code)
	}
	logs := s.stderr.String()
	otelLines := 0
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("stderr line is not JSON: %s", line)
			continue
		}
		if m["msg"] == "OpenTelemetry error" {
			otelLines++
			if m["level"] != "WARN" || m["component"] != "otel" || !strings.Contains(fmt.Sprint(m["error"]), "connection refused") {
				t.Errorf("OpenTelemetry error line: %s", line)
			}
		}
	}
	if otelLines == 0 {
		t.Errorf("no OpenTelemetry error line")
	}
	if strings.Contains(logs, otlpSecret) {
		t.Errorf("the OTLP headers appear in the logs")
	}
}
