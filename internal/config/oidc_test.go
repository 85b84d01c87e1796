package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-authz/gatehouse/internal/testkit"
)

// TestOIDCServerConfig: the secret and the key are read from their files,
// the scopes split, the TTLs' 0 turned into "not cached", and the secret
// never printed.
func TestOIDCServerConfig(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte("s3cr3t-at-the-provider\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Parse(nil, env(map[string]string{
		"GATEHOUSE_JWT_SECRET":               "jwt-secret-0123456789",
		"GATEHOUSE_OIDC_INTROSPECTION_URL":   "https://idp.example/introspect",
		"GATEHOUSE_OIDC_ISSUER":              "https://idp.example",
		"GATEHOUSE_OIDC_CLIENT_SECRET_FILE":  secretFile,
		"GATEHOUSE_OIDC_REQUIRED_SCOPES":     "lasuite_meet, openid  docs",
		"GATEHOUSE_OIDC_ENCRYPTION_KEY_FILE": keyFile,
		"GATEHOUSE_OIDC_JWKS_URL":            "https://idp.example/jwks",
		"GATEHOUSE_OIDC_NEGATIVE_CACHE_TTL":  "0s",
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := c.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	o := sc.OIDC
	if o.ClientSecret != "s3cr3t-at-the-provider" || o.ClientID != "meet" || o.AudienceClaim != "client_id" {
		t.Errorf("secret/id/claim: %q %q %q", o.ClientSecret, o.ClientID, o.AudienceClaim)
	}
	if got := strings.Join(o.RequiredScopes, "|"); got != "lasuite_meet|openid|docs" {
		t.Errorf("required scopes %q", got)
	}
	if o.EncryptionKey == nil || o.CacheTTL != time.Minute || o.NegativeCacheTTL >= 0 || o.Timeout != 5*time.Second {
		t.Errorf("key %T, ttl %v, negative ttl %v, timeout %v", o.EncryptionKey, o.CacheTTL, o.NegativeCacheTTL, o.Timeout)
	}
	var logs testkit.LogBuffer
	testkit.NewLogger(&logs).Info("config", "config", c)
	if strings.Contains(logs.String(), "s3cr3t") || strings.Contains(fmt.Sprint(c.LogValue()), "s3cr3t") {
		t.Fatal("the client secret was printed")
	}
}

// TestOIDCSettingsNeedTheURL: OIDC settings without the introspection URL
// would do nothing; they are refused rather than ignored.
func TestOIDCSettingsNeedTheURL(t *testing.T) {
	for _, kv := range [][2]string{
		{"GATEHOUSE_OIDC_CLIENT_SECRET", "x"},
		{"GATEHOUSE_OIDC_JWKS_URL", "https://idp.example/jwks"},
		{"GATEHOUSE_OIDC_ISSUER", "https://idp.example"},
		{"GATEHOUSE_OIDC_TIMEOUT", "1s"},
		{"GATEHOUSE_OIDC_REQUIRED_SCOPES", "docs"},
		{"GATEHOUSE_OIDC_CACHE_TTL", "0s"},
	} {
		c, err := Parse(nil, env(map[string]string{"GATEHOUSE_JWT_SECRET": "jwt-secret-0123456789", kv[0]: kv[1]}), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.ServerConfig(); err == nil || !strings.Contains(err.Error(), "GATEHOUSE_OIDC_INTROSPECTION_URL") {
			t.Errorf("%s alone: %v", kv[0], err)
		}
	}
	c, err := Parse(nil, env(map[string]string{
		"GATEHOUSE_JWT_SECRET":               "jwt-secret-0123456789",
		"GATEHOUSE_OIDC_INTROSPECTION_URL":   "https://idp.example/introspect",
		"GATEHOUSE_OIDC_ENCRYPTION_KEY_FILE": filepath.Join(t.TempDir(), "missing.pem"),
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ServerConfig(); err == nil || !strings.Contains(err.Error(), "GATEHOUSE_OIDC_ENCRYPTION_KEY_FILE") {
		t.Errorf("missing key file: %v", err)
	}
}
