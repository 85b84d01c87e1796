package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-authz/gatehouse/userstore/redisstore"
)

func TestStaleIfErrorDefault(t *testing.T) {
	// The issue fixes it at one minute: a short Redis outage must not deny
	// users whose records were just seen.
	if got := Default().CacheStaleIfError; got != time.Minute {
		t.Fatalf("default stale-if-error %v, want 1m", got)
	}
	c, err := Parse(nil, env(map[string]string{}), nil)
	if err != nil || c.CacheStaleIfError != time.Minute {
		t.Fatalf("Parse: %v, %v", c.CacheStaleIfError, err)
	}
}

func redisCfg(set func(c *Config)) Config {
	c := Default()
	set(&c)
	return c
}

func TestRedisSettings(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Modes and credentials.
	for _, c := range []struct {
		name string
		cfg  Config
		mode redisstore.Mode
		pass string
	}{
		{"url", redisCfg(func(c *Config) { c.RedisURL = "redis://127.0.0.1:6379/0" }), redisstore.Standalone, ""},
		{"password file", redisCfg(func(c *Config) { c.RedisURL = "redis://127.0.0.1:6379/0"; c.RedisPasswordFile = pwFile }), redisstore.Standalone, "from-file"},
		{"sentinel settings", redisCfg(func(c *Config) { c.RedisSentinelAddrs = "10.0.0.1:26379, 10.0.0.2:26379"; c.RedisSentinelMaster = "m" }), redisstore.Sentinel, ""},
		{"sentinel url", redisCfg(func(c *Config) { c.RedisURL = "redis-sentinel://a:26379,b:26379/1?master_name=m" }), redisstore.Sentinel, ""},
		{"cluster settings", redisCfg(func(c *Config) { c.RedisClusterAddrs = "a:7000,b:7001"; c.RedisPassword = "inline" }), redisstore.Cluster, "inline"},
		{"cluster url", redisCfg(func(c *Config) { c.RedisURL = "rediss-cluster://a:7000,b:7001" }), redisstore.Cluster, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			if !c.cfg.UsesRedis() {
				t.Fatal("UsesRedis false")
			}
			if err := c.cfg.ValidateRedis(); err != nil {
				t.Fatalf("ValidateRedis: %v", err)
			}
			cc, err := c.cfg.RedisClientConfig()
			if err != nil {
				t.Fatal(err)
			}
			if m, _ := cc.Mode(); m != c.mode || cc.Password != c.pass {
				t.Fatalf("mode %v password %q; want %v %q", m, cc.Password, c.mode, c.pass)
			}
		})
	}
	// Refusals never show a password.
	const pw = "never-in-errors"
	for _, c := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"sentinel without master", redisCfg(func(c *Config) { c.RedisSentinelAddrs = "a:1" }), "GATEHOUSE_REDIS_SENTINEL_MASTER"},
		{"sentinel and cluster", redisCfg(func(c *Config) {
			c.RedisSentinelAddrs = "a:1"
			c.RedisSentinelMaster = "m"
			c.RedisClusterAddrs = "b:2"
		}), "only one"},
		{"bad cluster address", redisCfg(func(c *Config) { c.RedisClusterAddrs = "a" }), "GATEHOUSE_REDIS_CLUSTER_ADDRS"},
		{"password twice", redisCfg(func(c *Config) { c.RedisURL = "redis://a:1"; c.RedisPassword = pw; c.RedisPasswordFile = pwFile }), "only one of GATEHOUSE_REDIS_PASSWORD"},
		{"half a client cert", redisCfg(func(c *Config) { c.RedisURL = "redis://a:1"; c.RedisTLSKeyFile = "/k" }), "GATEHOUSE_REDIS_TLS_CERT_FILE"},
		// A missing CA file is found when the client is built, by
		// redisstore (TestClientConfigErrors "missing CA"): ValidateRedis
		// reads no TLS file.
		{"bad sentinel url", redisCfg(func(c *Config) { c.RedisURL = "redis-sentinel://u:" + pw + "@a:1/0" }), "master name"},
		{"unknown scheme", redisCfg(func(c *Config) { c.RedisURL = "memcache://a:1" }), "unsupported scheme"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.ValidateRedis()
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), pw) {
				t.Fatalf("ValidateRedis = %v; want an error containing %q and no password", err, c.want)
			}
		})
	}
}

func TestRedisSecretsRedacted(t *testing.T) {
	c := Default()
	c.RedisURL = "redis-sentinel://app:url-pw@a:1,b:2/0?master_name=m&sentinel_password=sent-pw"
	c.RedisPassword = "inline-pw"
	c.RedisSentinelPassword = "inline-sentinel-pw"
	out := c.String() + c.DescribeRedis()
	for _, secret := range []string{"url-pw", "sent-pw", "inline-pw", "inline-sentinel-pw"} {
		if strings.Contains(out, secret) {
			t.Errorf("%q printed: %s", secret, out)
		}
	}
	if !strings.Contains(out, "a:1,b:2") {
		t.Errorf("the addresses are not printed: %s", out)
	}
}
