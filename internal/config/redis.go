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
// reading the password files. Errors never contain a password.
func (c Config) ValidateRedis() error {
	if !c.UsesRedis() {
		return errors.New("no Redis: set GATEHOUSE_REDIS_URL (--redis-url), GATEHOUSE_REDIS_SENTINEL_ADDRS or GATEHOUSE_REDIS_CLUSTER_ADDRS")
	}
	if c.RedisURL != "" {
		if err := checkRedisURL(c.RedisURL); err != nil {
			return err
		}
	}
	if c.RedisTimeout <= 0 {
		return fmt.Errorf("GATEHOUSE_REDIS_TIMEOUT: must be positive, got %s", c.RedisTimeout)
	}
	if c.RedisSentinelAddrs != "" && c.RedisClusterAddrs != "" {
		return errors.New("set only one of GATEHOUSE_REDIS_SENTINEL_ADDRS and GATEHOUSE_REDIS_CLUSTER_ADDRS")
	}
	if c.RedisSentinelAddrs != "" && c.RedisSentinelMaster == "" {
		return errors.New("GATEHOUSE_REDIS_SENTINEL_ADDRS needs GATEHOUSE_REDIS_SENTINEL_MASTER (the master's name)")
	}
	cc, err := c.RedisClientConfig()
	if err != nil {
		return err
	}
	// Building a client parses the URL and reads the TLS files; it does not
	// dial.
	client, _, err := redisstore.NewUniversalClient(cc)
	if err != nil {
		return fmt.Errorf("Redis: %w", err)
	}
	_ = client.Close()
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
	if c.RedisSentinelAddrs != "" {
		if cc.SentinelAddrs, err = redisstore.ParseAddrs(c.RedisSentinelAddrs); err != nil {
			return cc, fmt.Errorf("GATEHOUSE_REDIS_SENTINEL_ADDRS: %w", err)
		}
	}
	if c.RedisClusterAddrs != "" {
		if cc.ClusterAddrs, err = redisstore.ParseAddrs(c.RedisClusterAddrs); err != nil {
			return cc, fmt.Errorf("GATEHOUSE_REDIS_CLUSTER_ADDRS: %w", err)
		}
	}
	if (c.RedisTLSCertFile == "") != (c.RedisTLSKeyFile == "") {
		return cc, errors.New("set both GATEHOUSE_REDIS_TLS_CERT_FILE and GATEHOUSE_REDIS_TLS_KEY_FILE, or neither")
	}
	if _, err := cc.Mode(); err != nil {
		return cc, fmt.Errorf("Redis: %w", err)
	}
	return cc, nil
}

// DescribeRedis names the configured Redis for logs, without secrets.
func (c Config) DescribeRedis() string {
	switch {
	case c.RedisURL != "":
		return c.RedactedRedisURL()
	case c.RedisSentinelAddrs != "":
		return "sentinel " + c.RedisSentinelAddrs + " master " + c.RedisSentinelMaster
	case c.RedisClusterAddrs != "":
		return "cluster " + c.RedisClusterAddrs
	}
	return ""
}
