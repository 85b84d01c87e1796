package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-authz/gatehouse/internal/bytesize"
	"github.com/gatehouse-authz/gatehouse/internal/testkit"
)

// env returns a LookupFunc over a map, so tests never see the real process
// environment.
func env(kv map[string]string) LookupFunc {
	return func(k string) (string, bool) {
		v, ok := kv[k]
		return v, ok
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse(nil, env(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("Parse with no input = %v, want defaults %v", c, want)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"grpc addr", c.GRPCAddr, ":9000"},
		{"ops addr", c.OpsAddr, ":8081"},
		{"algorithm", c.JWTAlgorithm, "HS256"},
		{"issuer", c.JWTIssuer, "lasuite-meet"},
		{"audience", c.JWTAudience, ""},
		{"leeway", c.JWTLeeway, time.Duration(0)},
		{"require exp", c.JWTRequireExp, false},
		{"cache ttl", c.CacheTTL, 30 * time.Second},
		{"negative ttl", c.CacheNegativeTTL, 5 * time.Second},
		{"cache size", c.CacheSize, 100000},
		{"user id format", c.UserIDFormat, "uuid"},
		{"log level", c.LogLevel, slog.LevelInfo},
		{"log format", c.LogFormat, "json"},
		{"reflection", c.GRPCReflection, false},
		{"grpc max recv size", c.GRPCMaxRecvSize, 64 << 20},
		{"grpc max connection idle", c.GRPCMaxConnectionIdle, 5 * time.Minute},
		{"realm", c.Realm, ""},
		{"shutdown timeout", c.ShutdownTimeout, 15 * time.Second},
		{"user id header", c.HeaderUserID, "x-auth-user-id"},
		{"client id header", c.HeaderClientID, "x-auth-client-id"},
		{"scope header", c.HeaderScope, "x-auth-scope"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("default %s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

// TestEachSetting checks every variable reaches its field, and that the flag
// beats the variable.
func TestEachSetting(t *testing.T) {
	type tc struct {
		flag, env        string
		envVal, flagVal  string
		field            func(c Config) any
		fromEnv, fromFlg any
	}
	cases := []tc{
		{"grpc-addr", "GATEHOUSE_GRPC_ADDR", "127.0.0.1:1", "127.0.0.1:2", func(c Config) any { return c.GRPCAddr }, "127.0.0.1:1", "127.0.0.1:2"},
		{"ops-addr", "GATEHOUSE_OPS_ADDR", ":1", ":2", func(c Config) any { return c.OpsAddr }, ":1", ":2"},
		{"http-addr", "GATEHOUSE_HTTP_ADDR", ":3", "", func(c Config) any { return c.HTTPAddr }, ":3", ""},
		{"http-path-prefix", "GATEHOUSE_HTTP_PATH_PREFIX", "/auth", "/ext", func(c Config) any { return c.HTTPPathPrefix }, "/auth", "/ext"},
		{"jwt-secret", "GATEHOUSE_JWT_SECRET", "env-key", "flag-key", func(c Config) any { return string(c.JWTSecret) }, "env-key", "flag-key"},
		{"jwt-secret-file", "GATEHOUSE_JWT_SECRET_FILE", "/e", "/f", func(c Config) any { return c.JWTSecretFile }, "/e", "/f"},
		{"jwt-algorithm", "GATEHOUSE_JWT_ALGORITHM", "HS384", "HS512", func(c Config) any { return c.JWTAlgorithm }, "HS384", "HS512"},
		{"jwt-issuer", "GATEHOUSE_JWT_ISSUER", "env-iss", "flag-iss", func(c Config) any { return c.JWTIssuer }, "env-iss", "flag-iss"},
		{"jwt-audience", "GATEHOUSE_JWT_AUDIENCE", "env-aud", "flag-aud", func(c Config) any { return c.JWTAudience }, "env-aud", "flag-aud"},
		{"jwt-leeway", "GATEHOUSE_JWT_LEEWAY", "2s", "3s", func(c Config) any { return c.JWTLeeway }, 2 * time.Second, 3 * time.Second},
		{"jwt-require-exp", "GATEHOUSE_JWT_REQUIRE_EXP", "true", "false", func(c Config) any { return c.JWTRequireExp }, true, false},
		{"meet-profile", "GATEHOUSE_MEET_PROFILE", "2026.08", "2025.10", func(c Config) any { return c.MeetProfile }, "2026.08", "2025.10"},
		{"addons-jwt-secret", "GATEHOUSE_ADDONS_JWT_SECRET", "env-addon", "flag-addon", func(c Config) any { return string(c.AddonsJWTSecret) }, "env-addon", "flag-addon"},
		{"addons-jwt-secret-file", "GATEHOUSE_ADDONS_JWT_SECRET_FILE", "/e", "/f", func(c Config) any { return c.AddonsJWTSecretFile }, "/e", "/f"},
		{"addons-jwt-algorithm", "GATEHOUSE_ADDONS_JWT_ALGORITHM", "HS384", "HS512", func(c Config) any { return c.AddonsJWTAlgorithm }, "HS384", "HS512"},
		{"addons-jwt-issuer", "GATEHOUSE_ADDONS_JWT_ISSUER", "env-iss", "", func(c Config) any { return c.AddonsJWTIssuer }, "env-iss", ""},
		{"addons-jwt-audience", "GATEHOUSE_ADDONS_JWT_AUDIENCE", "env-aud", "flag-aud", func(c Config) any { return c.AddonsJWTAudience }, "env-aud", "flag-aud"},
		{"scopes-prefix", "GATEHOUSE_SCOPES_PREFIX", "meet", "other", func(c Config) any { return c.ScopesPrefix }, "meet", "other"},
		{"oidc-introspection-url", "GATEHOUSE_OIDC_INTROSPECTION_URL", "https://e/i", "https://f/i", func(c Config) any { return c.OIDC.IntrospectionURL }, "https://e/i", "https://f/i"},
		{"oidc-issuer", "GATEHOUSE_OIDC_ISSUER", "https://e", "https://f", func(c Config) any { return c.OIDC.Issuer }, "https://e", "https://f"},
		{"oidc-client-id", "GATEHOUSE_OIDC_CLIENT_ID", "e-id", "f-id", func(c Config) any { return c.OIDC.ClientID }, "e-id", "f-id"},
		{"oidc-client-secret", "GATEHOUSE_OIDC_CLIENT_SECRET", "e-s", "f-s", func(c Config) any { return string(c.OIDCClientSecret) }, "e-s", "f-s"},
		{"oidc-client-secret-file", "GATEHOUSE_OIDC_CLIENT_SECRET_FILE", "/e", "/f", func(c Config) any { return c.OIDCClientSecretFile }, "/e", "/f"},
		{"oidc-client-auth", "GATEHOUSE_OIDC_CLIENT_AUTH", "client_secret_basic", "client_secret_post", func(c Config) any { return c.OIDC.ClientAuth }, "client_secret_basic", "client_secret_post"},
		{"oidc-required-scopes", "GATEHOUSE_OIDC_REQUIRED_SCOPES", "a,b", "c d", func(c Config) any { return c.OIDCRequiredScopes }, "a,b", "c d"},
		{"oidc-audience-claim", "GATEHOUSE_OIDC_AUDIENCE_CLAIM", "aud", "azp", func(c Config) any { return c.OIDC.AudienceClaim }, "aud", "azp"},
		{"oidc-timeout", "GATEHOUSE_OIDC_TIMEOUT", "1s", "2s", func(c Config) any { return c.OIDC.Timeout }, time.Second, 2 * time.Second},
		{"oidc-ca-file", "GATEHOUSE_OIDC_CA_FILE", "/e", "/f", func(c Config) any { return c.OIDC.CAFile }, "/e", "/f"},
		{"oidc-jwks-url", "GATEHOUSE_OIDC_JWKS_URL", "https://e/k", "https://f/k", func(c Config) any { return c.OIDC.JWKSURL }, "https://e/k", "https://f/k"},
		{"oidc-signing-algorithm", "GATEHOUSE_OIDC_SIGNING_ALGORITHM", "RS256", "ES384", func(c Config) any { return c.OIDC.SigningAlgorithm }, "RS256", "ES384"},
		{"oidc-encryption-key-file", "GATEHOUSE_OIDC_ENCRYPTION_KEY_FILE", "/e", "/f", func(c Config) any { return c.OIDCEncryptionKeyFile }, "/e", "/f"},
		{"oidc-encryption-algorithm", "GATEHOUSE_OIDC_ENCRYPTION_ALGORITHM", "RSA-OAEP-256", "ECDH-ES", func(c Config) any { return c.OIDC.EncryptionAlgorithm }, "RSA-OAEP-256", "ECDH-ES"},
		{"oidc-encryption-encoding", "GATEHOUSE_OIDC_ENCRYPTION_ENCODING", "A128GCM", "A192GCM", func(c Config) any { return c.OIDC.EncryptionEncoding }, "A128GCM", "A192GCM"},
		{"oidc-cache-ttl", "GATEHOUSE_OIDC_CACHE_TTL", "30s", "0s", func(c Config) any { return c.OIDC.CacheTTL }, 30 * time.Second, time.Duration(0)},
		{"oidc-negative-cache-ttl", "GATEHOUSE_OIDC_NEGATIVE_CACHE_TTL", "1s", "0s", func(c Config) any { return c.OIDC.NegativeCacheTTL }, time.Second, time.Duration(0)},
		{"redis-url", "GATEHOUSE_REDIS_URL", "redis://a:1", "redis://b:2", func(c Config) any { return c.RedisURL }, "redis://a:1", "redis://b:2"},
		{"redis-prefix", "GATEHOUSE_REDIS_PREFIX", "e:", "f:", func(c Config) any { return c.RedisPrefix }, "e:", "f:"},
		{"redis-timeout", "GATEHOUSE_REDIS_TIMEOUT", "1s", "2s", func(c Config) any { return c.RedisTimeout }, time.Second, 2 * time.Second},
		{"redis-username", "GATEHOUSE_REDIS_USERNAME", "eu", "fu", func(c Config) any { return c.RedisUsername }, "eu", "fu"},
		{"redis-password", "GATEHOUSE_REDIS_PASSWORD", "ep", "fp", func(c Config) any { return string(c.RedisPassword) }, "ep", "fp"},
		{"redis-password-file", "GATEHOUSE_REDIS_PASSWORD_FILE", "/e", "/f", func(c Config) any { return c.RedisPasswordFile }, "/e", "/f"},
		{"redis-sentinel-master", "GATEHOUSE_REDIS_SENTINEL_MASTER", "em", "fm", func(c Config) any { return c.RedisSentinelMaster }, "em", "fm"},
		{"redis-sentinel-addrs", "GATEHOUSE_REDIS_SENTINEL_ADDRS", "a:1,b:2", "c:3", func(c Config) any { return c.RedisSentinelAddrs }, "a:1,b:2", "c:3"},
		{"redis-sentinel-password", "GATEHOUSE_REDIS_SENTINEL_PASSWORD", "esp", "fsp", func(c Config) any { return string(c.RedisSentinelPassword) }, "esp", "fsp"},
		{"redis-sentinel-password-file", "GATEHOUSE_REDIS_SENTINEL_PASSWORD_FILE", "/e", "/f", func(c Config) any { return c.RedisSentinelPasswordFile }, "/e", "/f"},
		{"redis-cluster-addrs", "GATEHOUSE_REDIS_CLUSTER_ADDRS", "a:1,b:2", "c:3", func(c Config) any { return c.RedisClusterAddrs }, "a:1,b:2", "c:3"},
		{"redis-tls-ca-file", "GATEHOUSE_REDIS_TLS_CA_FILE", "/e", "/f", func(c Config) any { return c.RedisTLSCAFile }, "/e", "/f"},
		{"redis-tls-cert-file", "GATEHOUSE_REDIS_TLS_CERT_FILE", "/e", "/f", func(c Config) any { return c.RedisTLSCertFile }, "/e", "/f"},
		{"redis-tls-key-file", "GATEHOUSE_REDIS_TLS_KEY_FILE", "/e", "/f", func(c Config) any { return c.RedisTLSKeyFile }, "/e", "/f"},
		{"redis-tls-server-name", "GATEHOUSE_REDIS_TLS_SERVER_NAME", "e.example", "f.example", func(c Config) any { return c.RedisTLSServerName }, "e.example", "f.example"},
		{"users-file", "GATEHOUSE_USERS_FILE", "/e.json", "/f.yaml", func(c Config) any { return c.UsersFile }, "/e.json", "/f.yaml"},
		{"directory-origin", "GATEHOUSE_DIRECTORY_ORIGIN", "postgres://e/meet", "grpc://f:1", func(c Config) any { return c.DirectoryOrigin }, "postgres://e/meet", "grpc://f:1"},
		{"directory-origin-password-file", "GATEHOUSE_DIRECTORY_ORIGIN_PASSWORD_FILE", "/e", "/f", func(c Config) any { return c.DirectoryOriginPasswordFile }, "/e", "/f"},
		{"directory-origin-ca-file", "GATEHOUSE_DIRECTORY_ORIGIN_CA_FILE", "/e", "/f", func(c Config) any { return c.DirectoryOriginCAFile }, "/e", "/f"},
		{"directory-user-query", "GATEHOUSE_DIRECTORY_USER_QUERY", "SELECT e($1)", "SELECT f($1)", func(c Config) any { return c.DirectoryUserQuery }, "SELECT e($1)", "SELECT f($1)"},
		{"directory-app-query", "GATEHOUSE_DIRECTORY_APP_QUERY", "SELECT e($1)", "SELECT f($1)", func(c Config) any { return c.DirectoryAppQuery }, "SELECT e($1)", "SELECT f($1)"},
		{"directory-sub-query", "GATEHOUSE_DIRECTORY_SUB_QUERY", "SELECT e($1)", "SELECT f($1)", func(c Config) any { return c.DirectorySubQuery }, "SELECT e($1)", "SELECT f($1)"},
		{"redis-cache-ttl", "GATEHOUSE_REDIS_CACHE_TTL", "1m", "2m", func(c Config) any { return c.RedisCacheTTL }, time.Minute, 2 * time.Minute},
		{"redis-cache-negative-ttl", "GATEHOUSE_REDIS_CACHE_NEGATIVE_TTL", "1s", "0s", func(c Config) any { return c.RedisCacheNegativeTTL }, time.Second, time.Duration(0)},
		{"cache-ttl", "GATEHOUSE_CACHE_TTL", "1m", "2m", func(c Config) any { return c.CacheTTL }, time.Minute, 2 * time.Minute},
		{"cache-negative-ttl", "GATEHOUSE_CACHE_NEGATIVE_TTL", "1s", "0s", func(c Config) any { return c.CacheNegativeTTL }, time.Second, time.Duration(0)},
		{"cache-size", "GATEHOUSE_CACHE_SIZE", "10", "20", func(c Config) any { return c.CacheSize }, 10, 20},
		{"cache-stale-if-error", "GATEHOUSE_CACHE_STALE_IF_ERROR", "1m", "2m", func(c Config) any { return c.CacheStaleIfError }, time.Minute, 2 * time.Minute},
		{"token-cache-size", "GATEHOUSE_TOKEN_CACHE_SIZE", "5", "0", func(c Config) any { return c.TokenCacheSize }, 5, 0},
		{"user-id-format", "GATEHOUSE_USER_ID_FORMAT", "opaque", "uuid", func(c Config) any { return c.UserIDFormat }, "opaque", "uuid"},
		{"routes", "GATEHOUSE_ROUTES", "meet", "/etc/routes.yaml", func(c Config) any { return c.Routes }, "meet", "/etc/routes.yaml"},
		{"check-applications", "GATEHOUSE_CHECK_APPLICATIONS", "true", "false", func(c Config) any { return c.CheckApplications }, true, false},
		{"log-level", "GATEHOUSE_LOG_LEVEL", "debug", "warn", func(c Config) any { return c.LogLevel }, slog.LevelDebug, slog.LevelWarn},
		{"log-rate", "GATEHOUSE_LOG_RATE", "7", "0", func(c Config) any { return c.LogRate }, 7, 0},
		{"log-format", "GATEHOUSE_LOG_FORMAT", "text", "json", func(c Config) any { return c.LogFormat }, "text", "json"},
		{"omit-dynamic-metadata", "GATEHOUSE_OMIT_DYNAMIC_METADATA", "true", "false", func(c Config) any { return c.OmitDynamicMetadata }, true, false},
		{"grpc-reflection", "GATEHOUSE_GRPC_REFLECTION", "1", "false", func(c Config) any { return c.GRPCReflection }, true, false},
		{"grpc-max-recv-size", "GATEHOUSE_GRPC_MAX_RECV_SIZE", "16MiB", "134217728", func(c Config) any { return c.GRPCMaxRecvSize }, 16 << 20, 128 << 20},
		{"grpc-max-connection-idle", "GATEHOUSE_GRPC_MAX_CONNECTION_IDLE", "1m", "1h", func(c Config) any { return c.GRPCMaxConnectionIdle }, time.Minute, time.Hour},
		{"realm", "GATEHOUSE_REALM", "env-realm", "flag-realm", func(c Config) any { return c.Realm }, "env-realm", "flag-realm"},
		{"shutdown-timeout", "GATEHOUSE_SHUTDOWN_TIMEOUT", "5s", "6s", func(c Config) any { return c.ShutdownTimeout }, 5 * time.Second, 6 * time.Second},
		{"drain-period", "GATEHOUSE_DRAIN_PERIOD", "3s", "0s", func(c Config) any { return c.DrainPeriod }, 3 * time.Second, time.Duration(0)},
		{"tls-cert-file", "GATEHOUSE_TLS_CERT_FILE", "/e.crt", "/f.crt", func(c Config) any { return c.TLSCertFile }, "/e.crt", "/f.crt"},
		{"tls-key-file", "GATEHOUSE_TLS_KEY_FILE", "/e.key", "/f.key", func(c Config) any { return c.TLSKeyFile }, "/e.key", "/f.key"},
		{"tls-client-ca-file", "GATEHOUSE_TLS_CLIENT_CA_FILE", "/e.pem", "/f.pem", func(c Config) any { return c.TLSClientCAFile }, "/e.pem", "/f.pem"},
		{"header-user-id", "GATEHOUSE_HEADER_USER_ID", "X-User", "x-u2", func(c Config) any { return c.HeaderUserID }, "x-user", "x-u2"},
		{"header-client-id", "GATEHOUSE_HEADER_CLIENT_ID", "x-client", "X-C2", func(c Config) any { return c.HeaderClientID }, "x-client", "x-c2"},
		{"header-scope", "GATEHOUSE_HEADER_SCOPE", "x-scope", "x-s2", func(c Config) any { return c.HeaderScope }, "x-scope", "x-s2"},
		{"otel-endpoint", "GATEHOUSE_OTEL_ENDPOINT", "otel:4317", "http://c:4317", func(c Config) any { return c.OTelEndpoint }, "otel:4317", "http://c:4317"},
		{"otel-insecure", "GATEHOUSE_OTEL_INSECURE", "true", "false", func(c Config) any { return c.OTelInsecure }, true, false},
		{"otel-sample-ratio", "GATEHOUSE_OTEL_SAMPLE_RATIO", "0.25", "0.5", func(c Config) any { return c.OTelSampleRatio }, 0.25, 0.5},
	}
	if len(cases) != len(settings()) {
		t.Fatalf("%d cases for %d settings: add the new setting here", len(cases), len(settings()))
	}
	for _, c := range cases {
		t.Run(c.flag, func(t *testing.T) {
			e := env(map[string]string{c.env: c.envVal})
			got, err := Parse(nil, e, nil)
			if err != nil {
				t.Fatalf("env only: %v", err)
			}
			if v := c.field(got); v != c.fromEnv {
				t.Errorf("env %s=%s: got %v, want %v", c.env, c.envVal, v, c.fromEnv)
			}
			got, err = Parse([]string{"--" + c.flag + "=" + c.flagVal}, e, nil)
			if err != nil {
				t.Fatalf("env and flag: %v", err)
			}
			if v := c.field(got); v != c.fromFlg {
				t.Errorf("flag --%s=%s over env: got %v, want %v", c.flag, c.flagVal, v, c.fromFlg)
			}
		})
	}
}

func TestEmptyVariables(t *testing.T) {
	t.Run("empty issuer turns the check off", func(t *testing.T) {
		c, err := Parse(nil, env(map[string]string{"GATEHOUSE_JWT_ISSUER": ""}), nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.JWTIssuer != "" {
			t.Fatalf("issuer = %q, want empty", c.JWTIssuer)
		}
	})
	t.Run("unset issuer is lasuite-meet", func(t *testing.T) {
		c, err := Parse(nil, env(map[string]string{"GATEHOUSE_JWT_AUDIENCE": "x"}), nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.JWTIssuer != "lasuite-meet" {
			t.Fatalf("issuer = %q, want lasuite-meet", c.JWTIssuer)
		}
	})
	t.Run("empty issuer flag beats env", func(t *testing.T) {
		c, err := Parse([]string{"--jwt-issuer="}, env(map[string]string{"GATEHOUSE_JWT_ISSUER": "other"}), nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.JWTIssuer != "" {
			t.Fatalf("issuer = %q, want empty", c.JWTIssuer)
		}
	})
	t.Run("other empty variables count as unset", func(t *testing.T) {
		c, err := Parse(nil, env(map[string]string{
			"GATEHOUSE_GRPC_ADDR": "", "GATEHOUSE_CACHE_TTL": "", "GATEHOUSE_JWT_ALGORITHM": "",
			"GATEHOUSE_LOG_LEVEL": "", "GATEHOUSE_JWT_SECRET": "",
		}), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(c, Default()) {
			t.Fatalf("got %v, want defaults", c)
		}
	})
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string // substring of the one-line error
	}{
		{"bad duration variable", nil, map[string]string{"GATEHOUSE_CACHE_TTL": "soon"}, `GATEHOUSE_CACHE_TTL: "soon" is not a duration`},
		{"bad bool variable", nil, map[string]string{"GATEHOUSE_JWT_REQUIRE_EXP": "yes please"}, "GATEHOUSE_JWT_REQUIRE_EXP"},
		{"bad int variable", nil, map[string]string{"GATEHOUSE_CACHE_SIZE": "many"}, "GATEHOUSE_CACHE_SIZE"},
		{"huge int variable", nil, map[string]string{"GATEHOUSE_CACHE_SIZE": "99999999999999999999999"}, "out of range"},
		{"bad level variable", nil, map[string]string{"GATEHOUSE_LOG_LEVEL": "loud"}, "GATEHOUSE_LOG_LEVEL"},
		{"bad size variable", nil, map[string]string{"GATEHOUSE_GRPC_MAX_RECV_SIZE": "64MB"}, `GATEHOUSE_GRPC_MAX_RECV_SIZE: "64MB" is not a size`},
		{"huge size variable", nil, map[string]string{"GATEHOUSE_GRPC_MAX_RECV_SIZE": "9999999999GiB"}, "out of range"},
		{"bad duration flag", []string{"--jwt-leeway", "x"}, nil, "jwt-leeway"},
		{"unknown flag", []string{"--no-such-flag"}, nil, "no-such-flag"},
		{"positional argument", []string{"extra"}, nil, `unexpected argument "extra"`},
		{"first broken variable wins", nil, map[string]string{"GATEHOUSE_CACHE_TTL": "x", "GATEHOUSE_JWT_LEEWAY": "y"}, "GATEHOUSE_JWT_LEEWAY"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			_, err := Parse(c.args, env(c.env), &out)
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not mention %q", err, c.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			if out.Len() != 0 {
				t.Errorf("Parse printed on error: %q", out.String())
			}
		})
	}
}

func TestFlagOverridesBrokenVariable(t *testing.T) {
	c, err := Parse([]string{"--cache-ttl=1m"}, env(map[string]string{"GATEHOUSE_CACHE_TTL": "soon"}), nil)
	if err != nil {
		t.Fatalf("a flag should override a broken variable: %v", err)
	}
	if c.CacheTTL != time.Minute {
		t.Fatalf("cache ttl = %s, want 1m", c.CacheTTL)
	}
}

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	_, err := Parse([]string{"-h"}, env(nil), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"-grpc-addr", "GATEHOUSE_GRPC_ADDR", "-jwt-secret-file", "-dev", "(default :9000)", "-cache-ttl duration"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help does not mention %q:\n%s", want, out.String())
		}
	}
}

func TestDevDefaults(t *testing.T) {
	c, err := Parse([]string{"--dev"}, env(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.GRPCAddr != "127.0.0.1:9000" || c.OpsAddr != "127.0.0.1:8081" {
		t.Errorf("dev listeners = %s, %s, want loopback", c.GRPCAddr, c.OpsAddr)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("dev with nothing set should validate: %v", err)
	}
	c, err = Parse([]string{"--dev", "--grpc-addr=:7000"}, env(map[string]string{"GATEHOUSE_OPS_ADDR": ":7001"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.GRPCAddr != ":7000" || c.OpsAddr != ":7001" {
		t.Errorf("explicit addresses in dev = %s, %s, want :7000, :7001", c.GRPCAddr, c.OpsAddr)
	}
}

func TestStripNewline(t *testing.T) {
	cases := []struct{ in, want string }{
		{"key", "key"},
		{"key\n", "key"},
		{"key\r\n", "key"},
		{"key\n\n", "key\n"},
		{"key\r\n\r\n", "key\r\n"},
		{"key\r", "key\r"},
		{"key \n", "key "},
		{"key\t", "key\t"},
		{"\n", ""},
		{"", ""},
		{"\nkey", "\nkey"},
	}
	for _, c := range cases {
		if got := string(StripNewline([]byte(c.in))); got != c.want {
			t.Errorf("StripNewline(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestSecretFromFile(t *testing.T) {
	for _, c := range []struct{ content, want string }{
		{"file-key\n", "file-key"},
		{"file-key\r\n", "file-key"},
		{"file-key", "file-key"},
		{"file-key\n\n", "file-key\n"},
	} {
		cfg := Default()
		cfg.JWTSecretFile = testkit.WriteFile(t, "secret", c.content)
		got, err := cfg.Secret()
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != c.want {
			t.Errorf("secret from file %q = %q, want %q", c.content, got, c.want)
		}
		jwt, err := cfg.JWT()
		if err != nil {
			t.Fatal(err)
		}
		if string(jwt.Secret) != c.want || jwt.Algorithm != "HS256" || jwt.Issuer != "lasuite-meet" {
			t.Errorf("JWT() = alg %s iss %s, secret mismatch", jwt.Algorithm, jwt.Issuer)
		}
	}
}

// validBase is a configuration that validates; each refusal case breaks one
// thing.
func validBase(t *testing.T) Config {
	c := Default()
	c.JWTSecret = "a-very-secret-key-of-some-length"
	c.UsersFile = testkit.WriteFile(t, "users.json", `[{"id":"x","active":true}]`)
	return c
}

func TestValidate(t *testing.T) {
	const secret = "TOPSECRET-do-not-print"
	secretFile := func(t *testing.T) string { return testkit.WriteFile(t, "key", secret+"\n") }
	cases := []struct {
		name   string
		mutate func(t *testing.T, c *Config)
		want   string // "" means valid
	}{
		{"valid users file", func(*testing.T, *Config) {}, ""},
		{"valid redis", func(t *testing.T, c *Config) {
			c.UsersFile = ""
			c.RedisURL = "redis://user:" + secret + "@127.0.0.1:6379/0"
		}, ""},
		{"valid secret file", func(t *testing.T, c *Config) { c.JWTSecret = ""; c.JWTSecretFile = secretFile(t) }, ""},
		{"valid HS512 opaque", func(t *testing.T, c *Config) { c.JWTAlgorithm = "HS512"; c.UserIDFormat = "opaque" }, ""},
		{"valid empty negative ttl", func(t *testing.T, c *Config) { c.CacheNegativeTTL = 0 }, ""},
		{"missing secret", func(t *testing.T, c *Config) { c.JWTSecret = "" }, "no JWT secret"},
		{"both secrets", func(t *testing.T, c *Config) { c.JWTSecretFile = secretFile(t) }, "set only one of GATEHOUSE_JWT_SECRET"},
		{"secret file missing", func(t *testing.T, c *Config) {
			c.JWTSecret = ""
			c.JWTSecretFile = filepath.Join(t.TempDir(), "nope")
		}, "JWT secret file: open"},
		{"secret file is a directory", func(t *testing.T, c *Config) { c.JWTSecret = ""; c.JWTSecretFile = t.TempDir() }, "JWT secret file: read"},
		{"secret file empty", func(t *testing.T, c *Config) { c.JWTSecret = ""; c.JWTSecretFile = testkit.WriteFile(t, "k", "\n") }, "is empty"},
		{"unknown algorithm", func(t *testing.T, c *Config) { c.JWTAlgorithm = "RS256" }, `unsupported algorithm "RS256"`},
		{"none algorithm", func(t *testing.T, c *Config) { c.JWTAlgorithm = "none" }, "unsupported algorithm"},
		{"lower-case algorithm", func(t *testing.T, c *Config) { c.JWTAlgorithm = "hs256" }, "unsupported algorithm"},
		{"no directory", func(t *testing.T, c *Config) { c.UsersFile = "" }, "no user directory"},
		{"both directories", func(t *testing.T, c *Config) { c.RedisURL = "redis://127.0.0.1:6379" }, "set only one of GATEHOUSE_REDIS_URL"},
		{"users file missing", func(t *testing.T, c *Config) { c.UsersFile = filepath.Join(t.TempDir(), "nope.json") }, "users file: open"},
		{"users file is a directory", func(t *testing.T, c *Config) { c.UsersFile = t.TempDir() }, "is a directory"},
		{"redis scheme", func(t *testing.T, c *Config) { c.UsersFile = ""; c.RedisURL = "http://127.0.0.1:6379" }, `unsupported scheme "http"`},
		{"redis no host", func(t *testing.T, c *Config) { c.UsersFile = ""; c.RedisURL = "redis://" }, "missing host"},
		{"redis unparseable", func(t *testing.T, c *Config) {
			c.UsersFile = ""
			c.RedisURL = "redis://u:" + secret + "@[::1"
		}, "not a valid URL"},
		{"redis timeout", func(t *testing.T, c *Config) { c.UsersFile = ""; c.RedisURL = "redis://h:1"; c.RedisTimeout = 0 }, "GATEHOUSE_REDIS_TIMEOUT"},
		{"negative leeway", func(t *testing.T, c *Config) { c.JWTLeeway = -time.Second }, "GATEHOUSE_JWT_LEEWAY"},
		{"zero cache ttl", func(t *testing.T, c *Config) { c.CacheTTL = 0 }, "GATEHOUSE_CACHE_TTL"},
		{"negative negative ttl", func(t *testing.T, c *Config) { c.CacheNegativeTTL = -1 }, "GATEHOUSE_CACHE_NEGATIVE_TTL"},
		{"negative stale", func(t *testing.T, c *Config) { c.CacheStaleIfError = -1 }, "GATEHOUSE_CACHE_STALE_IF_ERROR"},
		{"zero cache size", func(t *testing.T, c *Config) { c.CacheSize = 0 }, "GATEHOUSE_CACHE_SIZE"},
		{"negative token cache size", func(t *testing.T, c *Config) { c.TokenCacheSize = -1 }, "GATEHOUSE_TOKEN_CACHE_SIZE"},
		{"negative log rate", func(t *testing.T, c *Config) { c.LogRate = -1 }, "GATEHOUSE_LOG_RATE"},
		{"zero shutdown timeout", func(t *testing.T, c *Config) { c.ShutdownTimeout = 0 }, "GATEHOUSE_SHUTDOWN_TIMEOUT"},
		{"grpc max recv size at gRPC's default", func(t *testing.T, c *Config) { c.GRPCMaxRecvSize = 4 << 20 }, ""},
		{"grpc max recv size at 1GiB", func(t *testing.T, c *Config) { c.GRPCMaxRecvSize = 1 << 30 }, ""},
		{"grpc max recv size below gRPC's default", func(t *testing.T, c *Config) { c.GRPCMaxRecvSize = 1 << 20 }, "GATEHOUSE_GRPC_MAX_RECV_SIZE: must be between 4MiB and 1GiB, got 1MiB"},
		{"grpc max recv size zero", func(t *testing.T, c *Config) { c.GRPCMaxRecvSize = 0 }, "GATEHOUSE_GRPC_MAX_RECV_SIZE"},
		{"grpc max recv size over 1GiB", func(t *testing.T, c *Config) { c.GRPCMaxRecvSize = 1<<30 + 1 }, "GATEHOUSE_GRPC_MAX_RECV_SIZE"},
		{"zero grpc max connection idle", func(t *testing.T, c *Config) { c.GRPCMaxConnectionIdle = 0 }, "GATEHOUSE_GRPC_MAX_CONNECTION_IDLE"},
		{"negative grpc max connection idle", func(t *testing.T, c *Config) { c.GRPCMaxConnectionIdle = -time.Second }, "GATEHOUSE_GRPC_MAX_CONNECTION_IDLE"},
		{"bad id format", func(t *testing.T, c *Config) { c.UserIDFormat = "int" }, "GATEHOUSE_USER_ID_FORMAT"},
		{"empty id format", func(t *testing.T, c *Config) { c.UserIDFormat = "" }, "GATEHOUSE_USER_ID_FORMAT"},
		{"bad log format", func(t *testing.T, c *Config) { c.LogFormat = "xml" }, "GATEHOUSE_LOG_FORMAT"},
		{"bad grpc addr", func(t *testing.T, c *Config) { c.GRPCAddr = "9000" }, "GATEHOUSE_GRPC_ADDR"},
		{"bad ops port", func(t *testing.T, c *Config) { c.OpsAddr = ":99999" }, "GATEHOUSE_OPS_ADDR"},
		{"header with space", func(t *testing.T, c *Config) { c.HeaderUserID = "x user" }, "GATEHOUSE_HEADER_USER_ID"},
		{"empty header", func(t *testing.T, c *Config) { c.HeaderScope = "" }, "GATEHOUSE_HEADER_SCOPE"},
		{"reserved header", func(t *testing.T, c *Config) { c.HeaderClientID = "authorization" }, "reserved"},
		{"duplicate header", func(t *testing.T, c *Config) { c.HeaderScope = "x-auth-user-id" }, "already used by GATEHOUSE_HEADER_USER_ID"},
		{"realm with newline", func(t *testing.T, c *Config) { c.Realm = "a\r\nx-evil: 1" }, "GATEHOUSE_REALM"},
		{"otel sample ratio", func(t *testing.T, c *Config) { c.OTelSampleRatio = 1.5 }, "GATEHOUSE_OTEL_SAMPLE_RATIO: must be between 0 and 1"},
		{"otel sample ratio NaN", func(t *testing.T, c *Config) { c.OTelSampleRatio = math.NaN() }, "GATEHOUSE_OTEL_SAMPLE_RATIO"},
		{"http path prefix", func(t *testing.T, c *Config) { c.HTTPPathPrefix = "/a/../b" }, "GATEHOUSE_HTTP_PATH_PREFIX"},
		{"no http listener, any prefix", func(t *testing.T, c *Config) { c.HTTPAddr = ""; c.HTTPPathPrefix = "/a/../b" }, ""},
		{"supplied directory", func(t *testing.T, c *Config) { c.UsersFile = "" }, "no user directory"},
		{"dev needs no secret or directory", func(t *testing.T, c *Config) { c.JWTSecret = ""; c.UsersFile = ""; c.Dev = true }, ""},
		{"dev still checks a given secret file", func(t *testing.T, c *Config) {
			c.Dev = true
			c.JWTSecret = ""
			c.JWTSecretFile = filepath.Join(t.TempDir(), "nope")
		}, "JWT secret file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := validBase(t)
			cfg.JWTSecret = secret
			c.mutate(t, &cfg)
			err := cfg.Validate()
			if c.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error mentioning %q", c.want)
			}
			msg := err.Error()
			if !strings.Contains(msg, c.want) {
				t.Errorf("Validate() = %q, want it to mention %q", msg, c.want)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error is not one line: %q", msg)
			}
			if strings.Contains(msg, secret) {
				t.Errorf("error leaks the secret: %q", msg)
			}
		})
	}
}

func TestValidateSuppliedDirectory(t *testing.T) {
	c := validBase(t)
	c.UsersFile = ""
	if err := c.ValidateSuppliedDirectory(); err != nil {
		t.Fatalf("ValidateSuppliedDirectory without a directory setting = %v", err)
	}
	c.JWTSecret = ""
	if err := c.ValidateSuppliedDirectory(); err == nil || !strings.Contains(err.Error(), "no JWT secret") {
		t.Fatalf("ValidateSuppliedDirectory still checks the rest: %v", err)
	}
}

func TestRedaction(t *testing.T) {
	const secret, password = "jwt-secret-value-42", "redis-pass-77"
	c := Default()
	c.JWTSecret = secret
	c.RedisURL = "redis://app:" + password + "@127.0.0.1:6379/2?password=" + password
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("config", "config", c)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("config", "config", c, "secret", c.JWTSecret)
	jsonOut, err := json.Marshal(struct{ S Secret }{c.JWTSecret})
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"String": c.String(),
		"%v":     fmt.Sprintf("%v", c),
		"%+v":    fmt.Sprintf("%+v", c),
		"%#v":    fmt.Sprintf("%#v", c),
		//lint:ignore S1025 the test checks what each formatting verb prints
		"%s":          fmt.Sprintf("%s", c),
		"secret %v":   fmt.Sprintf("%v %s %#v", c.JWTSecret, c.JWTSecret, c.JWTSecret),
		"slog":        logs.String(),
		"json secret": string(jsonOut),
	}
	for name, out := range outputs {
		if strings.Contains(out, secret) || strings.Contains(out, password) {
			t.Errorf("%s leaks a secret: %s", name, out)
		}
	}
	for _, name := range []string{"String", "%v", "slog"} {
		if !strings.Contains(outputs[name], Redacted) {
			t.Errorf("%s does not show the redaction marker: %s", name, outputs[name])
		}
	}
	if got, want := c.RedactedRedisURL(), "redis://app:REDACTED@127.0.0.1:6379/2?password=REDACTED"; got != want {
		t.Errorf("RedactedRedisURL() = %q, want %q", got, want)
	}
	// Non-secret settings stay readable.
	if !strings.Contains(c.String(), `grpc_addr=":9000"`) || !strings.Contains(c.String(), `jwt_issuer="lasuite-meet"`) {
		t.Errorf("String() lost plain settings: %s", c.String())
	}
	var empty Config
	if empty.JWTSecret.String() != "" || empty.RedactedRedisURL() != "" {
		t.Error("unset secrets should print as empty")
	}
}

func TestSettingsDocumented(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range Settings() {
		if !strings.HasPrefix(s.Env, "GATEHOUSE_") || s.Flag == "" || s.Usage == "" {
			t.Errorf("setting %+v is incomplete", s)
		}
		if seen[s.Env] || seen[s.Flag] {
			t.Errorf("duplicate setting %s/%s", s.Env, s.Flag)
		}
		seen[s.Env], seen[s.Flag] = true, true
	}
}

func TestBindGroupAndAlias(t *testing.T) {
	c := Default()
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	b := Bind(&c, fs, GroupJWT, env(map[string]string{"GATEHOUSE_JWT_ISSUER": "env-iss", "GATEHOUSE_GRPC_ADDR": "x:1"}))
	if err := b.Alias("issuer", "jwt-issuer"); err != nil {
		t.Fatal(err)
	}
	if err := b.Alias("addr", "grpc-addr"); err == nil {
		t.Error("aliasing a setting outside the group should fail")
	}
	if fs.Lookup("grpc-addr") != nil {
		t.Error("GroupJWT registered a server flag")
	}
	if err := ParseFlags(fs, []string{"--issuer", "flag-iss"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Finish(); err != nil {
		t.Fatal(err)
	}
	if c.JWTIssuer != "flag-iss" || !b.Explicit("jwt-issuer") {
		t.Errorf("issuer = %q (explicit %v), want flag-iss through the alias", c.JWTIssuer, b.Explicit("jwt-issuer"))
	}
	if c.GRPCAddr != ":9000" {
		t.Errorf("server variable applied to the JWT group: %s", c.GRPCAddr)
	}
}

// TestConfigDocsListEverySetting keeps docs/configuration.md's settings table in step
// with the settings: one row per setting, in the table's order, with its
// flag and its default, and no row for a setting that does not exist.
func TestConfigDocsListEverySetting(t *testing.T) {
	rows := readmeSettingRows(t)
	settings := Settings()
	var envs []string
	for _, s := range settings {
		envs = append(envs, s.Env)
		row, ok := rows[s.Env]
		if !ok {
			t.Errorf("docs/configuration.md has no table row for %s", s.Env)
			continue
		}
		if row.flag != "`--"+s.Flag+"`" {
			t.Errorf("docs/configuration.md: %s has flag %s, want `--%s`", s.Env, row.flag, s.Flag)
		}
		if !readmeDefaultMatches(row.def, s.Default) {
			t.Errorf("docs/configuration.md: %s has default %s, the setting's is %q", s.Env, row.def, s.Default)
		}
	}
	for env, row := range rows {
		if !slices.Contains(envs, env) {
			t.Errorf("docs/configuration.md row %d documents %s, which is not a setting", row.index, env)
		}
	}
	for i, s := range settings {
		if row, ok := rows[s.Env]; ok && row.index != i {
			t.Errorf("docs/configuration.md lists %s as row %d, the settings table as %d", s.Env, row.index, i)
			break
		}
	}
}

// readmeDefaultMatches: an empty default is written "empty" or "—" (with a
// remark); any other is the value in backquotes.
func readmeDefaultMatches(cell, def string) bool {
	if def == "" {
		return cell == "empty" || strings.HasPrefix(cell, "—")
	}
	return cell == "`"+def+"`"
}

type readmeRow struct {
	index     int
	flag, def string
}

// readmeSettingRows parses the rows of docs/configuration.md's settings table,
// "| `GATEHOUSE_X` | `--x` | default | meaning |", by variable.
func readmeSettingRows(t *testing.T) map[string]readmeRow {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join("..", "..", "docs", "configuration.md"))
	if err != nil {
		t.Fatalf("read docs/configuration.md: %v", err)
	}
	rows := map[string]readmeRow{}
	for _, line := range strings.Split(string(readme), "\n") {
		if !strings.HasPrefix(line, "| `GATEHOUSE_") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		if len(cells) < 4 {
			t.Errorf("docs/configuration.md settings row has %d cells: %s", len(cells), line)
			continue
		}
		env := strings.Trim(strings.TrimSpace(cells[0]), "`")
		if _, dup := rows[env]; dup {
			t.Errorf("docs/configuration.md lists %s twice", env)
		}
		rows[env] = readmeRow{index: len(rows), flag: strings.TrimSpace(cells[1]), def: strings.TrimSpace(cells[2])}
	}
	return rows
}

// TestConfigDocsListEmptyValues: docs/configuration.md's sentence on empty variables names
// exactly the settings for which empty is a value.
func TestConfigDocsListEmptyValues(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "docs", "configuration.md"))
	if err != nil {
		t.Fatalf("read docs/configuration.md: %v", err)
	}
	_, rest, ok := strings.Cut(string(readme), "counts as unset, except ")
	if !ok {
		t.Fatal("docs/configuration.md has no sentence \"... counts as unset, except ...\"")
	}
	sentence, _, _ := strings.Cut(rest, ", where empty is a value")
	listed := regexp.MustCompile("`(GATEHOUSE_[A-Z_]+)`").FindAllStringSubmatch(sentence, -1)
	var got, want []string
	for _, m := range listed {
		got = append(got, m[1])
	}
	for _, s := range Settings() {
		if s.KeepEmpty {
			want = append(want, s.Env)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("docs/configuration.md says empty is a value for %v; the settings keep it for %v", got, want)
	}
}

func TestByteSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
	}{
		{"0", 0}, {"67108864", 64 << 20}, {"64MiB", 64 << 20}, {"64mib", 64 << 20}, {" 64 MiB ", 64 << 20},
		{"512KiB", 512 << 10}, {"1GiB", 1 << 30}, {"100B", 100}, {"1025", 1025},
	} {
		var n int
		if err := (byteSizeValue{&n}).Set(c.in); err != nil || n != c.want {
			t.Errorf("Set(%q) = %d, %v; want %d", c.in, n, err, c.want)
		}
	}
	for _, in := range []string{"", "MiB", "-1", "1.5MiB", "64MB", "64M", "1e6", "64 Mi B", "0x10"} {
		var n int
		if err := (byteSizeValue{&n}).Set(in); err == nil {
			t.Errorf("Set(%q) = %d, want an error", in, n)
		}
	}
	// String is what help and docs/configuration.md show as the default: it must
	// parse back to the same value.
	for _, n := range []int{0, 1, 1023, 1024, 64 << 20, 3 << 30, 1<<20 + 1} {
		s := byteSizeValue{&n}.String()
		var back int
		if err := (byteSizeValue{&back}).Set(s); err != nil || back != n {
			t.Errorf("%d prints as %q, which parses back as %d, %v", n, s, back, err)
		}
	}
	if got := bytesize.Format(64 << 20); got != "64MiB" {
		t.Errorf("bytesize.Format(64MiB) = %q", got)
	}
}

// TestLogValueListsEverySetting: the start-up line ("config") shows every
// setting, under the variable's name without GATEHOUSE_ in lower case, with
// the value as the flag prints it (secrets redacted).
func TestLogValueListsEverySetting(t *testing.T) {
	c := Default()
	c.JWTSecret = "not-printed-0123456789"
	logged := map[string]string{}
	for _, a := range c.LogValue().Group() {
		logged[a.Key] = a.Value.String()
	}
	for _, s := range settings() {
		key := strings.ToLower(strings.TrimPrefix(s.env, "GATEHOUSE_"))
		got, ok := logged[key]
		if !ok {
			t.Errorf("LogValue has no %s (%s)", key, s.env)
			continue
		}
		v := s.value(&c)
		if _, secret := v.(secretValue); secret {
			continue // TestRedaction
		}
		if want := v.String(); got != want {
			t.Errorf("LogValue %s = %q, the flag prints %q", key, got, v.String())
		}
	}
}

// TestSecretFromKeyFile: a file of several keys gives the first key to what
// needs one (gatehouse token, the length warning), never the file's text.
func TestSecretFromKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys")
	body := "# gatehouse keys v1\nnew: " + strings.Repeat("n", 32) + "\nold: " + strings.Repeat("o", 32) + "\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	c := Config{JWTSecretFile: path}
	got, err := c.Secret()
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != strings.Repeat("n", 32) {
		t.Errorf("Secret() = %d bytes, want the first key", len(got))
	}
	addons := Config{AddonsJWTSecretFile: path}
	if got, err := addons.AddonsSecret(); err != nil || string(got) != strings.Repeat("n", 32) {
		t.Errorf("AddonsSecret() = %d bytes, %v; want the first key", len(got), err)
	}
	if err := os.WriteFile(path, []byte("# gatehouse keys v1\nbroken line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Secret(); err == nil {
		t.Error("a malformed key file was accepted")
	}
}
