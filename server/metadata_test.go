package server

import "testing"

// TestOmitDynamicMetadata: the setting reaches the ext_authz answers, and
// the default keeps dynamic_metadata (access logs and rate limits read it).
func TestOmitDynamicMetadata(t *testing.T) {
	for _, omit := range []bool{false, true} {
		cfg := baseConfig(t)
		cfg.UsersFile = usersFile(t)
		cfg.OmitDynamicMetadata = omit
		r := start(t, cfg, Options{})
		resp := r.check(t, "Bearer "+token(t, activeUser))
		if !allowed(resp) {
			t.Fatalf("omit=%v: denied", omit)
		}
		if got := resp.GetDynamicMetadata().GetFields()["user_id"].GetStringValue(); (got == activeUser) == omit {
			t.Fatalf("omit=%v: dynamic_metadata user_id = %q", omit, got)
		}
	}
}
