package oidc

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-authz/gatehouse/internal/testkit"
)

func TestNewValidates(t *testing.T) {
	rsaSmall, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	base := func() Config {
		return Config{IntrospectionURL: "https://idp.example/introspect", Issuer: testIssuer, ClientSecret: testSecret}
	}
	rows := []struct {
		name  string
		edit  func(*Config)
		field string
	}{
		{"no URL", func(c *Config) { c.IntrospectionURL = "" }, "IntrospectionURL"},
		{"ftp URL", func(c *Config) { c.IntrospectionURL = "ftp://idp.example/x" }, "IntrospectionURL"},
		{"relative URL", func(c *Config) { c.IntrospectionURL = "/introspect" }, "IntrospectionURL"},
		{"URL with password", func(c *Config) { c.IntrospectionURL = "https://meet:" + testSecret + "@idp.example/x" }, "IntrospectionURL"},
		{"no issuer", func(c *Config) { c.Issuer = "" }, "Issuer"},
		{"no secret", func(c *Config) { c.ClientSecret = "" }, "ClientSecret"},
		{"client auth", func(c *Config) { c.ClientAuth = "private_key_jwt" }, "ClientAuth"},
		{"empty scope", func(c *Config) { c.RequiredScopes = []string{"a", ""} }, "RequiredScopes"},
		{"scope with space", func(c *Config) { c.RequiredScopes = []string{"a b"} }, "RequiredScopes"},
		{"negative timeout", func(c *Config) { c.Timeout = -time.Second }, "Timeout"},
		{"negative size", func(c *Config) { c.CacheSize = -1 }, "CacheSize"},
		{"bad JWKS URL", func(c *Config) { c.JWKSURL = "file:///etc/jwks" }, "JWKSURL"},
		{"HS256", func(c *Config) { c.SigningAlgorithm = "HS256" }, "SigningAlgorithm"},
		{"none", func(c *Config) { c.SigningAlgorithm = "none" }, "SigningAlgorithm"},
		{"RSA1_5", func(c *Config) { c.EncryptionAlgorithm = "RSA1_5" }, "EncryptionAlgorithm"},
		{"dir", func(c *Config) { c.EncryptionAlgorithm = "dir" }, "EncryptionAlgorithm"},
		{"enc", func(c *Config) { c.EncryptionEncoding = "A256KW" }, "EncryptionEncoding"},
		{"key without JWKS", func(c *Config) { c.EncryptionKey = ecKey }, "EncryptionKey"},
		{"EC key for RSA-OAEP", func(c *Config) { c.JWKSURL = "https://idp.example/jwks"; c.EncryptionKey = ecKey }, "EncryptionKey"},
		{"short RSA key", func(c *Config) { c.JWKSURL = "https://idp.example/jwks"; c.EncryptionKey = rsaSmall }, "EncryptionKey"},
		{"key type", func(c *Config) { c.JWKSURL = "https://idp.example/jwks"; c.EncryptionKey = "pem text" }, "EncryptionKey"},
		{"missing CA file", func(c *Config) { c.CAFile = "/nonexistent/ca.pem" }, "CAFile"},
		{"CA file without PEM", func(c *Config) { c.CAFile = testkit.WriteFile(t, "ca.pem", "nothing here") }, "CAFile"},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			cfg := base()
			row.edit(&cfg)
			_, err := New(cfg)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), row.field) {
				t.Fatalf("error does not name %s: %v", row.field, err)
			}
			if strings.Contains(err.Error(), testSecret) {
				t.Fatalf("error holds the secret: %v", err)
			}
		})
	}
	in, err := New(base())
	if err != nil {
		t.Fatal(err)
	}
	s := in.cfg
	if s.clientID != DefaultClientID || s.audienceClaim != DefaultAudienceClaim || s.timeout != DefaultTimeout ||
		string(s.signingAlg) != DefaultSigningAlgorithm || string(s.encryptionAlg) != DefaultEncryptionAlgorithm ||
		string(s.encryptionEnc) != DefaultEncryptionEncoding || s.cacheTTL != DefaultCacheTTL ||
		s.negativeTTL != DefaultNegativeCacheTTL || s.cacheSize != DefaultCacheSize {
		t.Fatalf("defaults not applied: %+v", s)
	}
	if _, ok := s.requiredScopes[DefaultRequiredScope]; !ok || len(s.requiredScopes) != 1 {
		t.Fatalf("required scopes = %v", s.requiredScopes)
	}
	if s.client.CheckRedirect == nil || s.client.Timeout != DefaultTimeout {
		t.Fatal("default client follows redirects or has no timeout")
	}
}
