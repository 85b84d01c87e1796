package authz

import "testing"

func TestRetryAfter(t *testing.T) {
	for secs, want := range map[int]string{0: "1", -3: "1", 1: "1", 7: "7"} {
		d := Decision{RetryAfterSeconds: secs}
		if got := d.RetryAfter(); got != want {
			t.Errorf("RetryAfter(%d) = %q, want %q", secs, got, want)
		}
	}
}

func TestAdapterDecisionsDeny(t *testing.T) {
	for name, d := range map[string]Decision{"internal error": InternalError(), "invalid claims": InvalidClaims()} {
		if d.Allowed() || d.Status < 400 || d.Message == "" {
			t.Errorf("%s = %+v, want a deny with a status and a message", name, d)
		}
	}
}
