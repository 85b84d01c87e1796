package extauthz

import (
	"context"
	"net/http"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/gatehouse-authz/gatehouse/authz"
)

const testDecisionID = "0123456789abcdef0123456789abcdef"

// withID wraps d so that every decision carries testDecisionID, as the
// telemetry wrapper does.
func withID(d Decider) Decider {
	return decideFunc(func(ctx context.Context, r *authz.Request) authz.Decision {
		out := d.Decide(ctx, r)
		out.DecisionID = testDecisionID
		return out
	})
}

// recordingDecider is a Decider that is also a Recorder.
type recordingDecider struct {
	Decider
	recorded []authz.Reason
}

func (r *recordingDecider) Record(_ context.Context, d *authz.Decision) {
	r.recorded = append(r.recorded, d.Reason)
	d.DecisionID = testDecisionID
}

// decisionIDs returns the decision id of resp's metadata and deny header,
// and of the one decision log line.
func decisionIDs(t *testing.T, resp *authv3.CheckResponse, logs *logBuffer) (meta, hdr, logged string) {
	t.Helper()
	meta = metaString(resp, metaDecisionID)
	hdr = responseHeaders(t, resp.GetDeniedResponse().GetHeaders())[authz.DecisionIDHeader]
	lines := logs.Lines(t)
	if len(lines) != 1 {
		t.Fatalf("%d log lines, want 1", len(lines))
	}
	logged, _ = lines[0]["decision_id"].(string)
	return meta, hdr, logged
}

func TestDecisionIDOnDeny(t *testing.T) {
	for name, d := range map[string]authz.Decision{
		"401": {Result: authz.Deny, Reason: authz.ReasonTokenExpired, Status: http.StatusUnauthorized,
			Message: "Token expired.", Challenge: authz.ChallengeInvalidToken},
		"403": {Result: authz.Deny, Reason: authz.ReasonMissingScope, Status: http.StatusForbidden,
			Message: "Insufficient permissions.", Challenge: authz.ChallengeInsufficientScope, Scope: "s"},
		"503": {Result: authz.Unavailable, Reason: authz.ReasonDirectoryError, Status: http.StatusServiceUnavailable,
			Message: "Service temporarily unavailable.", RetryAfterSeconds: 1},
		// A decision the adapter cannot send becomes its internal error,
		// under the same id.
		"malformed": {Result: authz.Deny, Reason: authz.ReasonRouteDenied, Status: http.StatusOK},
	} {
		t.Run(name, func(t *testing.T) {
			var logs logBuffer
			srv := New(withID(decide(d)), Options{Logger: newTestLogger(&logs)})
			resp, err := srv.Check(testCtx(t), loadFixture(t, "front_envoy_http1_get.json"))
			if err != nil {
				t.Fatal(err)
			}
			mustMarshal(t, resp)
			meta, hdr, logged := decisionIDs(t, resp, &logs)
			if meta != testDecisionID || hdr != testDecisionID || logged != testDecisionID {
				t.Errorf("decision id: metadata %q, header %q, log %q; want %q in all three", meta, hdr, logged, testDecisionID)
			}
		})
	}
}

func TestDecisionIDOnAllow(t *testing.T) {
	var logs logBuffer
	srv := New(withID(allowAll), Options{Logger: newTestLogger(&logs)})
	resp, err := srv.Check(testCtx(t), loadFixture(t, "front_envoy_http1_get.json"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetOkResponse() == nil {
		t.Fatal("not an allow")
	}
	meta := metaString(resp, metaDecisionID)
	hdrs := responseHeaders(t, resp.GetOkResponse().GetHeaders())
	if _, sent := hdrs[authz.DecisionIDHeader]; sent {
		t.Errorf("allow sends %s upstream; it is a deny header", authz.DecisionIDHeader)
	}
	_, _, logged := decisionIDs(t, resp, &logs)
	if meta != testDecisionID || logged != testDecisionID {
		t.Errorf("decision id: metadata %q, log %q; want %q", meta, logged, testDecisionID)
	}
}

func TestDecisionIDLateAllow(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	late := decideFunc(func(ctx context.Context, r *authz.Request) authz.Decision {
		cancel() // the deadline passes while deciding
		return allowAll(ctx, r)
	})
	var logs logBuffer
	srv := New(withID(late), Options{Logger: newTestLogger(&logs)})
	resp, _ := srv.Check(ctx, loadFixture(t, "front_envoy_http1_get.json"))
	if resp.GetDeniedResponse() == nil || metaString(resp, metaReason) != string(ReasonDeadlineExceeded) {
		t.Fatalf("late allow not replaced: %v", resp)
	}
	meta, hdr, logged := decisionIDs(t, resp, &logs)
	if meta != testDecisionID || hdr != testDecisionID || logged != testDecisionID {
		t.Errorf("decision id: metadata %q, header %q, log %q; want %q", meta, hdr, logged, testDecisionID)
	}
}

func TestDecisionIDNoHTTPIsRecorded(t *testing.T) {
	rec := &recordingDecider{Decider: allowAll}
	var logs logBuffer
	srv := New(rec, Options{Logger: newTestLogger(&logs)})
	resp, err := srv.Check(testCtx(t), &authv3.CheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.recorded) != 1 || rec.recorded[0] != authz.ReasonBadRequest {
		t.Errorf("recorded %v, want [bad_request]", rec.recorded)
	}
	meta, hdr, logged := decisionIDs(t, resp, &logs)
	if meta != testDecisionID || hdr != testDecisionID || logged != testDecisionID {
		t.Errorf("decision id: metadata %q, header %q, log %q; want %q", meta, hdr, logged, testDecisionID)
	}
}

func TestNoDecisionIDNoHeader(t *testing.T) {
	srv := New(decide(authz.Decision{Result: authz.Deny, Reason: authz.ReasonInvalidToken,
		Status: http.StatusUnauthorized, Message: "Invalid token.", Challenge: authz.ChallengeInvalidToken}), Options{})
	resp, _ := srv.Check(testCtx(t), loadFixture(t, "front_envoy_http1_get.json"))
	if _, sent := responseHeaders(t, resp.GetDeniedResponse().GetHeaders())[authz.DecisionIDHeader]; sent {
		t.Error("empty decision id sent as a header")
	}
	if _, ok := resp.GetDynamicMetadata().GetFields()[metaDecisionID]; ok {
		t.Error("empty decision id in metadata")
	}
}

// TestDecisionIDHeaderValidated: a Decider that sets an id unfit for a
// header does not get it sent (it could split the header block).
func TestDecisionIDHeaderValidated(t *testing.T) {
	bad := decideFunc(func(context.Context, *authz.Request) authz.Decision {
		return authz.Decision{Result: authz.Deny, Reason: authz.ReasonInvalidToken, Status: http.StatusUnauthorized,
			Message: "Invalid token.", DecisionID: "x\r\ninjected: 1"}
	})
	resp, _ := New(bad, Options{}).Check(testCtx(t), loadFixture(t, "front_envoy_http1_get.json"))
	mustMarshal(t, resp)
	if _, sent := responseHeaders(t, resp.GetDeniedResponse().GetHeaders())[authz.DecisionIDHeader]; sent {
		t.Error("decision id with CR/LF sent as a header")
	}
}
