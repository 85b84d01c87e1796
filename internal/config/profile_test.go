package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-authz/gatehouse/authz"
)

// profileConfig is a valid serve configuration with vars set.
func profileConfig(t *testing.T, vars map[string]string) (Config, error) {
	t.Helper()
	all := map[string]string{"GATEHOUSE_JWT_SECRET": "profile-test-secret-of-32-bytes!!", "GATEHOUSE_USERS_FILE": usersFile(t)}
	for k, v := range vars {
		all[k] = v
	}
	c, err := Parse(nil, env(all), nil)
	if err != nil {
		return Config{}, err
	}
	return c, c.Validate()
}

func usersFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "users.json")
	if err := os.WriteFile(p, []byte(`[]`), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestMeetProfileSettings: the profile and the settings only 2026.08 reads
// reach the server, and those settings are refused under 2025.10 rather than
// ignored.
func TestMeetProfileSettings(t *testing.T) {
	addonFile := filepath.Join(t.TempDir(), "addon")
	if err := os.WriteFile(addonFile, []byte("add-on-key-of-at-least-32-bytes!!\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		vars    map[string]string
		wantErr string
		check   func(t *testing.T, c Config)
	}{
		{name: "default profile", check: func(t *testing.T, c Config) {
			sc, err := c.ServerConfig()
			if err != nil || sc.MeetProfile != authz.Profile202510 || sc.Addons.Secret != nil || sc.ScopesPrefix != "" {
				t.Fatalf("server config %v %+v", err, sc)
			}
		}},
		{name: "2026.08 with an add-on key file and a prefix", vars: map[string]string{
			"GATEHOUSE_MEET_PROFILE": "2026.08", "GATEHOUSE_ADDONS_JWT_SECRET_FILE": addonFile, "GATEHOUSE_SCOPES_PREFIX": "meet",
			"GATEHOUSE_ADDONS_JWT_AUDIENCE": "meet-addons", "GATEHOUSE_JWT_LEEWAY": "5s",
		}, check: func(t *testing.T, c Config) {
			sc, err := c.ServerConfig()
			if err != nil {
				t.Fatal(err)
			}
			want := authz.JWTConfig{Secret: []byte("add-on-key-of-at-least-32-bytes!!"), Algorithm: "HS256",
				Issuer: authz.DefaultIssuer, Audience: "meet-addons", Leeway: 5e9}
			if sc.MeetProfile != authz.Profile202608 || sc.ScopesPrefix != "meet" || string(sc.Addons.Secret) != string(want.Secret) ||
				sc.Addons.Algorithm != want.Algorithm || sc.Addons.Issuer != want.Issuer || sc.Addons.Audience != want.Audience ||
				sc.Addons.Leeway != want.Leeway {
				t.Fatalf("server config %+v", sc)
			}
		}},
		{name: "unknown profile", vars: map[string]string{"GATEHOUSE_MEET_PROFILE": "2026"}, wantErr: "GATEHOUSE_MEET_PROFILE: unknown Meet profile"},
		{name: "add-on key under 2025.10", vars: map[string]string{"GATEHOUSE_ADDONS_JWT_SECRET": "k"},
			wantErr: "GATEHOUSE_ADDONS_JWT_SECRET: add-on tokens need GATEHOUSE_MEET_PROFILE=2026.08"},
		{name: "prefix under 2025.10", vars: map[string]string{"GATEHOUSE_SCOPES_PREFIX": "meet"},
			wantErr: "GATEHOUSE_SCOPES_PREFIX: needs GATEHOUSE_MEET_PROFILE=2026.08"},
		{name: "both add-on key forms", vars: map[string]string{"GATEHOUSE_MEET_PROFILE": "2026.08",
			"GATEHOUSE_ADDONS_JWT_SECRET": "add-on-inline-secret", "GATEHOUSE_ADDONS_JWT_SECRET_FILE": addonFile},
			wantErr: "set only one of GATEHOUSE_ADDONS_JWT_SECRET and GATEHOUSE_ADDONS_JWT_SECRET_FILE"},
		{name: "missing add-on key file", vars: map[string]string{"GATEHOUSE_MEET_PROFILE": "2026.08",
			"GATEHOUSE_ADDONS_JWT_SECRET_FILE": addonFile + ".missing"}, wantErr: "GATEHOUSE_ADDONS_JWT_SECRET_FILE:"},
		{name: "add-on algorithm", vars: map[string]string{"GATEHOUSE_MEET_PROFILE": "2026.08", "GATEHOUSE_ADDONS_JWT_ALGORITHM": "RS256"},
			wantErr: "GATEHOUSE_ADDONS_JWT_ALGORITHM: unsupported algorithm"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := profileConfig(t, tc.vars)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "add-on-inline-secret") || strings.Contains(err.Error(), "add-on-key-of") {
					t.Fatalf("error carries the key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

// TestAddonsSecretRedacted: the add-on key never shows in the logged
// configuration.
func TestAddonsSecretRedacted(t *testing.T) {
	c := Default()
	c.AddonsJWTSecret = "add-on-secret-value"
	if s := c.String(); strings.Contains(s, "add-on-secret-value") || !strings.Contains(s, "addons_jwt_secret=") {
		t.Fatalf("logged configuration: %s", s)
	}
}
