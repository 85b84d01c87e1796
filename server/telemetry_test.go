package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/internal/telemetry"
	"github.com/gatehouse-authz/gatehouse/internal/testkit/redistest"
)

// checkWithHeaders sends one CheckRequest for GET path with extra headers.
func (r *running) checkWithHeaders(t *testing.T, path string, headers map[string]string) *authv3.CheckResponse {
	t.Helper()
	h := map[string]string{":method": "GET", ":path": path, ":authority": "api.example.com"}
	for k, v := range headers {
		h[k] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := authv3.NewAuthorizationClient(r.conn).Check(ctx, &authv3.CheckRequest{
		Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
			Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: path, Host: "api.example.com", Headers: h},
		}},
	})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return resp
}

func TestMetricsEndpoint(t *testing.T) {
	cfg := baseConfig(t)
	cfg.UsersFile = usersFile(t)
	r := start(t, cfg, Options{Build: telemetry.BuildInfo{Version: "v9.9.9", Commit: "c0ffee"}})

	r.check(t, "Bearer "+token(t, activeUser))
	r.check(t, "Bearer "+token(t, activeUser))
	r.check(t, "")
	r.check(t, "Bearer "+token(t, inactiveUser))
	if _, err := authv3.NewAuthorizationClient(r.conn).Check(context.Background(), &authv3.CheckRequest{}); err != nil {
		t.Fatal(err)
	}

	code, body := r.get(t, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, line := range []string{
		`gatehouse_decisions_total{reason="allowed",result="allow"} 2`,
		`gatehouse_decisions_total{reason="missing_credentials",result="deny"} 1`,
		`gatehouse_decisions_total{reason="user_disabled",result="deny"} 1`,
		`gatehouse_decisions_total{reason="bad_request",result="deny"} 1`,
		`gatehouse_decisions_total{reason="token_expired",result="deny"} 0`,
		`gatehouse_decision_duration_seconds_count{result="allow"} 2`,
		`gatehouse_decision_duration_seconds_count{result="deny"} 2`,
		`gatehouse_checks_in_flight 0`,
		`gatehouse_build_info{commit="c0ffee",goversion="go`,
		`version="v9.9.9"} 1`,
		`go_goroutines `,
		`process_cpu_seconds_total `,
	} {
		if !strings.Contains(body, line) {
			t.Errorf("/metrics lacks %q in\n%s", line, body)
		}
	}
	for _, secret := range []string{activeUser, inactiveUser, "test-app"} {
		if strings.Contains(body, secret) {
			t.Errorf("/metrics contains identifier %q", secret)
		}
	}

	// Not on the gRPC port, nor on the forward-auth port. The request is
	// written by hand: gRPC answers HTTP/1.1 with HTTP/2 frames, which
	// net/http's client would log about.
	addrs := []string{r.srv.GRPCAddr().String()}
	if a := r.srv.HTTPAddr(); a != nil {
		addrs = append(addrs, a.String())
	}
	for _, addr := range addrs {
		if got := rawGet(t, addr, "/metrics"); strings.Contains(got, "gatehouse_") || strings.HasPrefix(got, "HTTP/1.1 200") {
			t.Errorf("%s/metrics answered %q", addr, got)
		}
	}
}

// rawGet sends a bare HTTP/1.1 GET to addr and returns what comes back
// before the connection closes or a short bound passes.
func rawGet(t *testing.T, addr, path string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(conn, 64<<10))
	return string(b)
}

var decisionIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestDecisionIDAgrees(t *testing.T) {
	cfg := baseConfig(t)
	cfg.UsersFile = usersFile(t)
	r := start(t, cfg, Options{})

	deny := r.check(t, "Bearer "+token(t, inactiveUser))
	allow := r.check(t, "Bearer "+token(t, activeUser))

	hdr := header(deny, authz.DecisionIDHeader)
	meta := deny.GetDynamicMetadata().GetFields()["decision_id"].GetStringValue()
	if !decisionIDPattern.MatchString(hdr) || hdr != meta {
		t.Fatalf("deny: header %q, metadata %q; want one 32-hex id", hdr, meta)
	}
	allowID := allow.GetDynamicMetadata().GetFields()["decision_id"].GetStringValue()
	if !decisionIDPattern.MatchString(allowID) || allowID == hdr {
		t.Errorf("allow decision id %q (deny's %q)", allowID, hdr)
	}
	if header(allow, authz.DecisionIDHeader) != "" {
		t.Error("allow sends the decision id header upstream")
	}

	logged := map[string]string{} // decision_id -> reason
	for _, line := range strings.Split(strings.TrimSpace(r.logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == "ext_authz decision" {
			id, _ := m["decision_id"].(string)
			reason, _ := m["reason"].(string)
			logged[id] = reason
		}
	}
	if logged[hdr] != string(authz.ReasonUserDisabled) || logged[allowID] != string(authz.ReasonAllowed) {
		t.Errorf("log lines by decision id %v; want %s=user_disabled and %s=allowed", logged, hdr, allowID)
	}
}

func TestTracingJoinsCallerTrace(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	cfg := baseConfig(t)
	cfg.UsersFile = usersFile(t)
	r := start(t, cfg, Options{TracerProvider: tp})

	const traceID, parentID = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	tok := token(t, activeUser)
	resp := r.checkWithHeaders(t, "/v1/rooms?token="+tok, map[string]string{
		"authorization": "Bearer " + tok,
		"traceparent":   "00-" + traceID + "-" + parentID + "-01",
	})
	if resp.GetOkResponse() == nil {
		t.Fatalf("not allowed: %v", resp)
	}

	var check, lookup *tracetest.SpanStub
	spans := exp.GetSpans()
	for i := range spans {
		switch spans[i].Name {
		case telemetry.SpanCheck:
			check = &spans[i]
		case telemetry.SpanLookup:
			lookup = &spans[i]
		}
	}
	if check == nil || lookup == nil {
		t.Fatalf("spans %d: want %s and %s", len(spans), telemetry.SpanCheck, telemetry.SpanLookup)
	}
	if got := check.SpanContext.TraceID().String(); got != traceID {
		t.Errorf("check span trace id %s, want the caller's %s", got, traceID)
	}
	if got := check.Parent.SpanID().String(); got != parentID {
		t.Errorf("check span parent %s, want %s", got, parentID)
	}
	if lookup.Parent.SpanID() != check.SpanContext.SpanID() {
		t.Error("directory lookup is not a child of the check span")
	}
	id := resp.GetDynamicMetadata().GetFields()["decision_id"].GetStringValue()
	found := false
	for _, s := range spans {
		for _, kv := range s.Attributes {
			v := kv.Value.String()
			if strings.Contains(v, tok) || strings.Contains(v, activeUser) || strings.Contains(v, "token=") {
				t.Errorf("span %s attribute %s holds the token, its query or the user id", s.Name, kv.Key)
			}
			if kv.Key == telemetry.AttrDecisionID && v == id {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("no span carries decision id %q", id)
	}
}

// TestOTLPExporterConfigured: with an endpoint, the server builds its own
// exporter and starts even though no collector listens (the connection is
// lazy), decides, and stops within the usual bound. Sampling 0 keeps the
// stop from waiting on a flush to nowhere.
func TestOTLPExporterConfigured(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now

	cfg := baseConfig(t)
	cfg.UsersFile = usersFile(t)
	cfg.OTelEndpoint = addr
	cfg.OTelInsecure = true
	cfg.OTelSampleRatio = 0
	r := start(t, cfg, Options{})
	if r.srv.tp == nil {
		t.Fatal("no tracer provider built for GATEHOUSE_OTEL_ENDPOINT")
	}
	if resp := r.check(t, "Bearer "+token(t, activeUser)); resp.GetOkResponse() == nil {
		t.Fatalf("not allowed with tracing on: %v", resp)
	}
	if err := r.stop(t); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if r.srv.tp != nil {
		t.Error("tracer provider not shut down")
	}
}

func TestOTelSampleRatioRefused(t *testing.T) {
	for _, ratio := range []float64{-0.1, 1.5} {
		cfg := baseConfig(t)
		cfg.UsersFile = usersFile(t)
		cfg.OTelSampleRatio = ratio
		_, err := New(context.Background(), cfg.Config, nil, Options{})
		// The field is named; cmd/gatehouse names the variable
		// (internal/config's TestValidate, "otel sample ratio").
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != "OTelSampleRatio" {
			t.Errorf("ratio %v: err = %v, want a *ConfigError for OTelSampleRatio", ratio, err)
		}
	}
}

// TestDirectoryLookupMetrics: the cache and Redis layers are counted, and
// Redis lookups timed, with a real redis-server.
func TestDirectoryLookupMetrics(t *testing.T) {
	rs := redistest.Start(t)
	hset(t, rs, activeUser, "1")
	r := start(t, redisConfig(t, rs.URL()), Options{})

	r.check(t, "Bearer "+token(t, activeUser))                             // cache miss, Redis hit
	r.check(t, "Bearer "+token(t, activeUser))                             // cache hit
	r.check(t, "Bearer "+token(t, "99999999-9999-4999-8999-999999999999")) // cache miss, Redis miss

	_, body := r.get(t, "/metrics")
	for _, line := range []string{
		`gatehouse_directory_lookups_total{layer="cache",outcome="hit"} 1`,
		`gatehouse_directory_lookups_total{layer="cache",outcome="miss"} 2`,
		`gatehouse_directory_lookups_total{layer="redis",outcome="hit"} 1`,
		`gatehouse_directory_lookups_total{layer="redis",outcome="miss"} 1`,
		`gatehouse_redis_duration_seconds_count{outcome="ok"} 2`,
	} {
		if !strings.Contains(body, line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}
