package authz

import "testing"

func TestHeaderSafe(t *testing.T) {
	for in, want := range map[string]bool{
		"":                   true,
		"6f1c2f9e-3b7a":      true,
		"rooms:read admin":   true,
		"tab\tok":            true,
		"é unicode ✓":        true,
		"cr\rlf":             false,
		"lf\n":               false,
		"nul\x00":            false,
		"del\x7f":            false,
		"bad utf8 \xff":      false,
		"truncated \xe2\x9c": false,
	} {
		if got := HeaderSafe(in); got != want {
			t.Errorf("HeaderSafe(%q) = %v, want %v", in, got, want)
		}
	}
}

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
