package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Validate checks c's form without dialling or reading files: a URL of a
// known scheme with a host (or socket path) that parses, one deployment with
// what it needs (a Sentinel master name, addresses, Cluster's database 0),
// a client certificate with its key. NewUniversalClient calls it first, so callers
// need not; it is exported for those that want to refuse a configuration
// before building anything. Errors never contain a password.
func (c ClientConfig) Validate() error {
	if c.URL != "" {
		if err := checkURL(c.URL); err != nil {
			return err
		}
	}
	mode, err := c.Mode()
	if err != nil {
		return err
	}
	if mode == Standalone {
		if _, err := redis.ParseURL(c.URL); err != nil {
			return fmt.Errorf("invalid Redis URL: %w", redactURLError(c.URL, err))
		}
	} else if _, _, err := c.multiForm(mode); err != nil {
		return err
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return errors.New("TLS client certificate: set both the certificate file and the key file, or neither")
	}
	return nil
}

// checkURL checks the scheme and the host of a Redis URL; the rest is parsed
// by the client builder. Its errors never quote the URL, which may hold a
// password.
func checkURL(raw string) error {
	if scheme, _, ok := strings.Cut(raw, "://"); ok {
		switch scheme {
		case "redis-sentinel", "rediss-sentinel", "redis-cluster", "rediss-cluster":
			// A host list, which net/url refuses: parseMultiURL reads it.
			return nil
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url's error quotes the whole URL, password included.
		return errors.New("not a valid URL")
	}
	switch u.Scheme {
	case "redis", "rediss":
		if u.Host == "" {
			return errors.New("missing host (want redis://[user:pass@]host:port/db)")
		}
	case "unix":
		if u.Path == "" {
			return errors.New("missing socket path (want unix:///path/to/redis.sock)")
		}
	default:
		return fmt.Errorf("unsupported scheme %q (want redis, rediss, unix, redis-sentinel, rediss-sentinel, redis-cluster or rediss-cluster)", u.Scheme)
	}
	return nil
}

// Redacted replaces passwords in printed URLs.
const Redacted = "REDACTED"

// RedactURL returns raw with its password (and any password or
// sentinel_password query parameter) replaced by "REDACTED".
func RedactURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "[unparseable URL " + Redacted + "]"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), Redacted)
		}
	}
	if q := u.Query(); q.Has("password") || q.Has("sentinel_password") {
		for _, k := range []string{"password", "sentinel_password"} {
			if q.Has(k) {
				q.Set(k, Redacted)
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// Describe names the deployment c selects for logs, without secrets.
func (c ClientConfig) Describe() string {
	switch {
	case c.URL != "":
		return RedactURL(c.URL)
	case len(c.SentinelAddrs) > 0:
		return "sentinel " + strings.Join(c.SentinelAddrs, ",") + " master " + c.SentinelMaster
	case len(c.ClusterAddrs) > 0:
		return "cluster " + strings.Join(c.ClusterAddrs, ",")
	}
	return ""
}

// RouteLogs sends go-redis's internal log lines (dial retries, pool events)
// to logger at debug level instead of go-redis's own stderr logger, so that
// every line the process writes is structured. gatehouse reports Redis
// trouble itself, at warning level, from its probe and its lookups.
//
// go-redis keeps its logger in a process-wide variable: call this once, from
// main, before any Redis client is used.
func RouteLogs(logger *slog.Logger) {
	redis.SetLogger(redisLogger{logger})
}

type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	if l.log.Enabled(ctx, slog.LevelDebug) {
		l.log.DebugContext(ctx, fmt.Sprintf(format, v...), "source", "go-redis")
	}
}
