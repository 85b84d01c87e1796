package server

import (
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/gatehouse-authz/gatehouse/authz"
)

// TestMeetProfile2026: the profile and the add-on key reach the decision
// core. Under 2026.08 a PUT on the rooms list is 405 with Allow, an add-on
// token is accepted, and the application of a delegation token is looked up
// whether or not application checks are configured.
func TestMeetProfile2026(t *testing.T) {
	const addonSecret = "server-test-add-on-secret-0123456789"
	cfg := baseConfig(t)
	users := filepath.Join(t.TempDir(), "users.yaml")
	body := "users:\n  - {id: " + activeUser + ", active: true}\napps:\n  - {id: test-app, active: false}\n"
	if err := os.WriteFile(users, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.UsersFile = users
	cfg.Routes = "meet"
	cfg.MeetProfile = authz.Profile202608
	cfg.Addons.Secret = []byte(addonSecret)
	r := start(t, cfg, Options{})
	const rooms = "/external-api/v1.0/rooms/"

	addon, err := authz.IssueToken(authz.JWTConfig{Secret: []byte(addonSecret), Algorithm: "HS256",
		Issuer: authz.DefaultAddonsIssuer, Audience: authz.DefaultAddonsAudience},
		authz.TokenSpec{UserID: activeUser, Scope: "ROOMS:LIST", Addon: true})
	if err != nil {
		t.Fatal(err)
	}
	if resp := r.checkRequest(t, "GET", rooms, "Bearer "+addon.AccessToken, nil); resp.GetOkResponse() == nil {
		t.Fatalf("add-on token refused: %v", resp)
	}
	resp := r.checkRequest(t, "PUT", rooms, "Bearer "+addon.AccessToken, nil)
	if got := resp.GetDeniedResponse().GetStatus().GetCode(); int(got) != 405 || header(resp, "allow") != "GET, POST, HEAD, OPTIONS" ||
		detail(t, resp) != `Method "PUT" not allowed.` {
		t.Fatalf("PUT: %v", resp)
	}
	// The delegation token's application is disabled: refused, although
	// CheckApplications is off.
	resp = r.checkRequest(t, "GET", rooms, "Bearer "+token(t, activeUser), nil)
	if codes.Code(resp.GetStatus().GetCode()) != codes.Unauthenticated || detail(t, resp) != "Application is disabled." {
		t.Fatalf("delegation token of a disabled application: %v", resp)
	}
}
