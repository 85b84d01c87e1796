package config

import (
	"errors"
	"fmt"
	"os"

	"github.com/gatehouse-authz/gatehouse/userstore/redisstore"
)

// UsesRedis reports whether a Redis directory is configured: a URL, Sentinel
// addresses or Cluster addresses.
func (c Config) UsesRedis() bool {
	return c.RedisURL != "" || c.RedisSentinelAddrs != "" || c.RedisClusterAddrs != ""
}

// ValidateRedis checks the Redis settings (not the server's reachability),
// reading the password files: what the directory commands need. The form of
// the deployment is redisstore's to check (ClientConfig.Validate, which the
// client builder runs too); the TLS files are read when the client is built.
// Errors never contain a password.
func (c Config) ValidateRedis() error {
	if !c.UsesRedis() {
		return errors.New("no Redis: set GATEHOUSE_REDIS_URL (--redis-url), GATEHOUSE_REDIS_SENTINEL_ADDRS or GATEHOUSE_REDIS_CLUSTER_ADDRS")
	}
	cc, err := c.RedisClientConfig()
	if err != nil {
		return err
	}
	if err := cc.Validate(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}

// readSecret returns an inline secret or a file's content (one trailing
// newline stripped); both set is an error naming the variables.
func readSecret(env string, inline Secret, file string) (string, error) {
	switch {
	case inline != "" && file != "":
		return "", fmt.Errorf("set only one of %s and %s_FILE", env, env)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s_FILE: %w", env, fileError(err))
		}
		b = StripNewline(b)
		if len(b) == 0 {
			return "", fmt.Errorf("%s_FILE: %s is empty", env, file)
		}
		return string(b), nil
	default:
		return string(inline), nil
	}
}

// RedisClientConfig turns the Redis settings into the client description of
// redisstore, reading password files. It checks the address lists and the
// URL's form; TLS files are read when the client is built.
func (c Config) RedisClientConfig() (redisstore.ClientConfig, error) {
	pass, err := readSecret("GATEHOUSE_REDIS_PASSWORD", c.RedisPassword, c.RedisPasswordFile)
	if err != nil {
		return redisstore.ClientConfig{}, err
	}
	spass, err := readSecret("GATEHOUSE_REDIS_SENTINEL_PASSWORD", c.RedisSentinelPassword, c.RedisSentinelPasswordFile)
	if err != nil {
		return redisstore.ClientConfig{}, err
	}
	cc := redisstore.ClientConfig{
		URL:              c.RedisURL,
		SentinelMaster:   c.RedisSentinelMaster,
		SentinelPassword: spass,
		Username:         c.RedisUsername,
		Password:         pass,
		TLSCAFile:        c.RedisTLSCAFile,
		TLSCertFile:      c.RedisTLSCertFile,
		TLSKeyFile:       c.RedisTLSKeyFile,
		TLSServerName:    c.RedisTLSServerName,
	}
	if cc.SentinelAddrs, err = addrList("GATEHOUSE_REDIS_SENTINEL_ADDRS", c.RedisSentinelAddrs); err != nil {
		return cc, err
	}
	if cc.ClusterAddrs, err = addrList("GATEHOUSE_REDIS_CLUSTER_ADDRS", c.RedisClusterAddrs); err != nil {
		return cc, err
	}
	return cc, c.checkRedisPairs()
}

// addrList parses a comma-separated host:port list ("": none).
func addrList(env, s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	addrs, err := redisstore.ParseAddrs(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", env, err)
	}
	return addrs, nil
}

// checkRedisPairs checks which Redis variables go together, which is this
// package's to say; the rest of the form is redisstore's
// (ClientConfig.Validate).
func (c Config) checkRedisPairs() error {
	switch {
	case c.RedisSentinelAddrs != "" && c.RedisClusterAddrs != "":
		return errors.New("set only one of GATEHOUSE_REDIS_SENTINEL_ADDRS and GATEHOUSE_REDIS_CLUSTER_ADDRS")
	case c.RedisSentinelAddrs != "" && c.RedisSentinelMaster == "":
		return errors.New("GATEHOUSE_REDIS_SENTINEL_ADDRS needs GATEHOUSE_REDIS_SENTINEL_MASTER (the master's name)")
	case (c.RedisTLSCertFile == "") != (c.RedisTLSKeyFile == ""):
		return errors.New("set both GATEHOUSE_REDIS_TLS_CERT_FILE and GATEHOUSE_REDIS_TLS_KEY_FILE, or neither")
	}
	return nil
}

// DescribeRedis names the configured Redis for logs, without secrets.
func (c Config) DescribeRedis() string {
	return redisstore.ClientConfig{
		URL:            c.RedisURL,
		SentinelMaster: c.RedisSentinelMaster,
		SentinelAddrs:  nonEmpty(c.RedisSentinelAddrs),
		ClusterAddrs:   nonEmpty(c.RedisClusterAddrs),
	}.Describe()
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// RedactedRedisURL returns the Redis URL with its password (and any password
// query parameter) replaced by "REDACTED".
func (c Config) RedactedRedisURL() string { return redisstore.RedactURL(c.RedisURL) }
