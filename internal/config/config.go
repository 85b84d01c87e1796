// Package config holds gatehouse's configuration: every setting is a command
// line flag whose default comes from a GATEHOUSE_* environment variable, so a
// flag beats the environment, which beats the built-in default.
//
// The package never reads the process environment itself: callers pass a
// lookup function (os.LookupEnv in main, a map in tests), which keeps tests
// hermetic. Secrets (the JWT key, the Redis password) are held in types and
// printed through methods that redact them, so a Config can be logged whole.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/authz/forwardauth"
	"github.com/gatehouse-authz/gatehouse/internal/logbudget"
)

// LookupFunc looks up an environment variable; it has os.LookupEnv's
// signature so that a variable set to the empty string can be told from an
// unset one.
type LookupFunc func(key string) (string, bool)

// Defaults for the settings whose default is not the zero value.
const (
	DefaultGRPCAddr         = ":9000"
	DefaultOpsAddr          = ":8081"
	DefaultDevGRPCAddr      = "127.0.0.1:9000"
	DefaultDevOpsAddr       = "127.0.0.1:8081"
	DefaultHTTPAddr         = ":8080"
	DefaultDevHTTPAddr      = "127.0.0.1:8080"
	DefaultHTTPPathPrefix   = "/check"
	DefaultCacheTTL         = 30 * time.Second
	DefaultCacheNegativeTTL = 5 * time.Second
	DefaultCacheSize        = 100000
	DefaultCacheStale       = time.Minute
	DefaultRedisPrefix      = "gatehouse:"
	DefaultRedisTimeout     = 250 * time.Millisecond
	DefaultShutdownTimeout  = 15 * time.Second
	DefaultLogFormat        = "json"
	DefaultUserIDFormat     = "uuid"
	DefaultHeaderUserID     = "x-auth-user-id"
	DefaultHeaderClientID   = "x-auth-client-id"
	DefaultHeaderScope      = "x-auth-scope"
	DefaultOTelSampleRatio  = 1.0
	// DefaultGRPCMaxRecvSize is far above any CheckRequest a proxy sends,
	// a body forwarded by Envoy's with_request_body included, so that
	// gatehouse answers every request it can read (see GRPCMaxRecvSize).
	DefaultGRPCMaxRecvSize = 64 << 20
	// DefaultGRPCMaxConnectionIdle closes connections without a request
	// for a while; Envoy reconnects on its next request.
	DefaultGRPCMaxConnectionIdle = 5 * time.Minute
)

// Bounds of GATEHOUSE_GRPC_MAX_RECV_SIZE. Below gRPC's own default of 4 MiB,
// ordinary requests would be refused with a gRPC error instead of being
// decided; above 1 GiB one request could hold most of a pod's memory.
const (
	MinGRPCMaxRecvSize = 4 << 20
	MaxGRPCMaxRecvSize = 1 << 30
)

// Config is gatehouse's configuration. Build it with Parse (or Default and
// Bind), then call Validate.
type Config struct {
	// GRPCAddr is the ext_authz gRPC listen address.
	GRPCAddr string
	// OpsAddr is the ops HTTP listen address (/healthz, /readyz).
	OpsAddr string
	// HTTPAddr is the HTTP forward-auth listen address; empty disables it.
	HTTPAddr string
	// HTTPPathPrefix is the path under which Envoy's http_service sends the
	// original request (and the path other proxies' subrequests use).
	HTTPPathPrefix string

	// JWTSecret is the HMAC key given inline; JWTSecretFile names a file
	// holding it instead (one trailing newline stripped). Set at most one.
	JWTSecret     Secret
	JWTSecretFile string
	// JWTAlgorithm is the one accepted "alg" (HS256, HS384, HS512).
	JWTAlgorithm string
	// JWTIssuer is the required iss; empty turns the issuer check off.
	JWTIssuer string
	// JWTAudience is the required aud; empty refuses tokens with an aud.
	JWTAudience string
	// JWTLeeway is the clock skew allowed on exp, nbf and iat.
	JWTLeeway time.Duration
	// JWTRequireExp refuses tokens without exp.
	JWTRequireExp bool

	// RedisURL is redis://[user:pass@]host:port/db (or rediss://, unix://);
	// empty means no Redis. It may hold a password: print it only through
	// RedactedRedisURL.
	RedisURL string
	// RedisPrefix is prepended to every Redis key.
	RedisPrefix string
	// RedisTimeout bounds one Redis lookup (the request's deadline, when
	// shorter, wins).
	RedisTimeout time.Duration
	// RedisUsername and RedisPassword (or RedisPasswordFile) are the data
	// nodes' credentials; they override the URL's.
	RedisUsername     string
	RedisPassword     Secret
	RedisPasswordFile string
	// RedisSentinelMaster and RedisSentinelAddrs (comma-separated host:port)
	// select Sentinel; RedisSentinelPassword(File) is the sentinels' own
	// password.
	RedisSentinelMaster       string
	RedisSentinelAddrs        string
	RedisSentinelPassword     Secret
	RedisSentinelPasswordFile string
	// RedisClusterAddrs (comma-separated host:port) selects Redis Cluster.
	RedisClusterAddrs string
	// RedisTLSCAFile, RedisTLSCertFile, RedisTLSKeyFile and
	// RedisTLSServerName configure TLS; any of them turns it on.
	RedisTLSCAFile     string
	RedisTLSCertFile   string
	RedisTLSKeyFile    string
	RedisTLSServerName string
	// UsersFile is a JSON or YAML file of {id, active} records, loaded into an
	// in-memory directory.
	UsersFile string

	// CacheTTL, CacheNegativeTTL and CacheSize configure the in-process cache
	// in front of Redis; CacheStaleIfError is how long an expired entry may
	// still be served while Redis cannot answer (0: never).
	CacheTTL          time.Duration
	CacheNegativeTTL  time.Duration
	CacheSize         int
	CacheStaleIfError time.Duration
	// TokenCacheSize bounds the verified-token cache (0: none).
	TokenCacheSize int
	// LogRate caps the decision lines each listener writes per second
	// below debug level (0: none); the rest are counted.
	LogRate int

	// UserIDFormat is "uuid" or "opaque" (see authz.ParseIDFormat).
	UserIDFormat string

	// Routes is a built-in route table name ("meet", "authenticate") or the
	// path of a routes file; empty: every request needs authentication and
	// no scope.
	Routes string
	// CheckApplications checks the token's client_id against the directory's
	// applications (DESIGN §2 step 9).
	CheckApplications bool

	// LogLevel and LogFormat ("json" or "text") configure logging.
	LogLevel  slog.Level
	LogFormat string

	// GRPCReflection turns on the gRPC reflection service.
	GRPCReflection bool
	// GRPCMaxRecvSize is the largest CheckRequest (gRPC message, bytes)
	// the server reads. A larger one is refused by gRPC itself with
	// RESOURCE_EXHAUSTED, an error gatehouse never sees: the limit is set
	// well above what a proxy sends, so that gatehouse decides every
	// request (the body plays no part in the decision).
	GRPCMaxRecvSize int
	// GRPCMaxConnectionIdle is how long a gRPC connection may stay without
	// a request before the server sends it a graceful GOAWAY and closes it.
	GRPCMaxConnectionIdle time.Duration
	// Realm, when set, is sent as the realm of WWW-Authenticate challenges.
	Realm string
	// ShutdownTimeout bounds the graceful stop after SIGTERM; in-flight
	// requests still running then are cut.
	ShutdownTimeout time.Duration

	// HeaderUserID, HeaderClientID and HeaderScope name the identity headers
	// added to allowed requests (lower case).
	HeaderUserID   string
	HeaderClientID string
	HeaderScope    string

	// OTelEndpoint is the OTLP gRPC trace collector (host:port or URL);
	// empty turns tracing off. OTelInsecure sends spans without TLS;
	// OTelSampleRatio is the fraction of new traces sampled (a caller's
	// traceparent decision is followed).
	OTelEndpoint    string
	OTelInsecure    bool
	OTelSampleRatio float64

	// Dev is serve --dev: a random secret when none is set, demo users when no
	// directory is configured, loopback listeners unless set explicitly.
	Dev bool
}

// Default returns the built-in defaults.
func Default() Config {
	return Config{
		GRPCAddr:          DefaultGRPCAddr,
		OpsAddr:           DefaultOpsAddr,
		HTTPAddr:          DefaultHTTPAddr,
		HTTPPathPrefix:    DefaultHTTPPathPrefix,
		JWTAlgorithm:      authz.DefaultAlgorithm,
		JWTIssuer:         authz.DefaultIssuer,
		RedisPrefix:       DefaultRedisPrefix,
		RedisTimeout:      DefaultRedisTimeout,
		CacheTTL:          DefaultCacheTTL,
		CacheNegativeTTL:  DefaultCacheNegativeTTL,
		CacheSize:         DefaultCacheSize,
		TokenCacheSize:    authz.DefaultTokenCacheSize,
		CacheStaleIfError: DefaultCacheStale,
		UserIDFormat:      DefaultUserIDFormat,
		LogLevel:          slog.LevelInfo,
		LogRate:           logbudget.DefaultPerSecond,
		LogFormat:         DefaultLogFormat,
		ShutdownTimeout:   DefaultShutdownTimeout,
		HeaderUserID:      DefaultHeaderUserID,
		HeaderClientID:    DefaultHeaderClientID,
		HeaderScope:       DefaultHeaderScope,
		OTelSampleRatio:   DefaultOTelSampleRatio,

		GRPCMaxRecvSize:       DefaultGRPCMaxRecvSize,
		GRPCMaxConnectionIdle: DefaultGRPCMaxConnectionIdle,
	}
}

// Group selects which settings a command accepts.
type Group uint8

const (
	// GroupJWT is the token settings (secret, algorithm, issuer, audience,
	// leeway, require-exp): what "gatehouse token" needs.
	GroupJWT Group = 1 << iota
	// GroupServer is everything else "gatehouse serve" needs.
	GroupServer
	// GroupRedis is the Redis connection settings and the user id format:
	// what "gatehouse users" and "gatehouse apps" need. Its settings are
	// in GroupServer too.
	GroupRedis
	// GroupAll is every setting.
	GroupAll = GroupJWT | GroupServer | GroupRedis
)

// setting describes one configuration value: its flag, its environment
// variable and where it lives in a Config.
type setting struct {
	flag  string
	env   string
	usage string
	group Group
	// keepEmpty: an environment variable set to "" sets the value to "";
	// otherwise an empty variable counts as unset (the usual reading of
	// "FOO=" in container manifests).
	keepEmpty bool
	value     func(c *Config) flag.Value
}

// settings is the table of every setting, in the order they are documented.
// It is rebuilt per call so that no package state is shared.
func settings() []setting {
	return []setting{
		{flag: "grpc-addr", env: "GATEHOUSE_GRPC_ADDR", group: GroupServer,
			usage: "ext_authz gRPC listen `address` (host:port)",
			value: func(c *Config) flag.Value { return stringValue{&c.GRPCAddr} }},
		{flag: "ops-addr", env: "GATEHOUSE_OPS_ADDR", group: GroupServer,
			usage: "ops HTTP listen `address` (/healthz, /readyz)",
			value: func(c *Config) flag.Value { return stringValue{&c.OpsAddr} }},
		{flag: "http-addr", env: "GATEHOUSE_HTTP_ADDR", group: GroupServer, keepEmpty: true,
			usage: "HTTP forward-auth listen `address` (empty: no forward-auth listener)",
			value: func(c *Config) flag.Value { return stringValue{&c.HTTPAddr} }},
		{flag: "http-path-prefix", env: "GATEHOUSE_HTTP_PATH_PREFIX", group: GroupServer,
			usage: "forward-auth `path` prefix (Envoy http_service path_prefix; the subrequest path of nginx, Traefik, Caddy)",
			value: func(c *Config) flag.Value { return stringValue{&c.HTTPPathPrefix} }},
		{flag: "jwt-secret", env: "GATEHOUSE_JWT_SECRET", group: GroupJWT,
			usage: "HMAC `key` of delegation tokens (prefer --jwt-secret-file: flags show in ps)",
			value: func(c *Config) flag.Value { return secretValue{&c.JWTSecret} }},
		{flag: "jwt-secret-file", env: "GATEHOUSE_JWT_SECRET_FILE", group: GroupJWT,
			usage: "`file` holding the HMAC key (one trailing newline stripped)",
			value: func(c *Config) flag.Value { return stringValue{&c.JWTSecretFile} }},
		{flag: "jwt-algorithm", env: "GATEHOUSE_JWT_ALGORITHM", group: GroupJWT,
			usage: "the one accepted JWT `algorithm`: HS256, HS384 or HS512",
			value: func(c *Config) flag.Value { return stringValue{&c.JWTAlgorithm} }},
		{flag: "jwt-issuer", env: "GATEHOUSE_JWT_ISSUER", group: GroupJWT, keepEmpty: true,
			usage: "required iss claim, the `issuer` (empty: no issuer check)",
			value: func(c *Config) flag.Value { return stringValue{&c.JWTIssuer} }},
		{flag: "jwt-audience", env: "GATEHOUSE_JWT_AUDIENCE", group: GroupJWT, keepEmpty: true,
			usage: "required aud claim, the `audience` (empty: tokens with an aud are refused)",
			value: func(c *Config) flag.Value { return stringValue{&c.JWTAudience} }},
		{flag: "jwt-leeway", env: "GATEHOUSE_JWT_LEEWAY", group: GroupJWT,
			usage: "clock skew allowed on exp, nbf and iat (a `duration`)",
			value: func(c *Config) flag.Value { return durationValue{&c.JWTLeeway} }},
		{flag: "jwt-require-exp", env: "GATEHOUSE_JWT_REQUIRE_EXP", group: GroupJWT,
			usage: "refuse tokens without an exp claim",
			value: func(c *Config) flag.Value { return boolValue{&c.JWTRequireExp} }},
		{flag: "redis-url", env: "GATEHOUSE_REDIS_URL", group: GroupServer | GroupRedis,
			usage: "user directory in Redis, a `url`: redis://[user:pass@]host:port/db, rediss://, unix://, redis-sentinel://, redis-cluster:// (empty: no Redis)",
			value: func(c *Config) flag.Value { return stringValue{&c.RedisURL} }},
		{flag: "redis-prefix", env: "GATEHOUSE_REDIS_PREFIX", group: GroupServer | GroupRedis, keepEmpty: true,
			usage: "`prefix` of every Redis key",
			value: func(c *Config) flag.Value { return stringValue{&c.RedisPrefix} }},
		{flag: "redis-timeout", env: "GATEHOUSE_REDIS_TIMEOUT", group: GroupServer | GroupRedis,
			usage: "bound on one Redis lookup (a `duration`)",
			value: func(c *Config) flag.Value { return durationValue{&c.RedisTimeout} }},
		{flag: "redis-username", env: "GATEHOUSE_REDIS_USERNAME", group: GroupServer | GroupRedis,
			usage: "Redis ACL `user` (overrides the URL's)",
			value: func(c *Config) flag.Value { return stringValue{&c.RedisUsername} }},
		{flag: "redis-password", env: "GATEHOUSE_REDIS_PASSWORD", group: GroupServer | GroupRedis,
			usage: "Redis `password` (overrides the URL's; prefer --redis-password-file)",
			value: func(c *Config) flag.Value { return secretValue{&c.RedisPassword} }},
		{flag: "redis-password-file", env: "GATEHOUSE_REDIS_PASSWORD_FILE", group: GroupServer | GroupRedis,
			usage: "`file` holding the Redis password (one trailing newline stripped)",
			value: func(c *Config) flag.Value { return stringValue{&c.RedisPasswordFile} }},
		{flag: "redis-sentinel-master", env: "GATEHOUSE_REDIS_SENTINEL_MASTER", group: GroupServer | GroupRedis,
			usage: "Sentinel master `name` (with --redis-sentinel-addrs)",
			value: func(c *Config) flag.Value { return stringValue{&c.RedisSentinelMaster} }},
		{flag: "redis-sentinel-addrs", env: "GATEHOUSE_REDIS_SENTINEL_ADDRS", group: GroupServer | GroupRedis,
			usage: "Sentinel `addresses`, comma-separated host:port",
			value: func(c *Config) flag.Value { return stringValue{&c.RedisSentinelAddrs} }},
		{flag: "redis-sentinel-password", env: "GATEHOUSE_REDIS_SENTINEL_PASSWORD", group: GroupServer | GroupRedis,
			usage: "the sentinels' own `password` (prefer --redis-sentinel-password-file)",
			value: func(c *Config) flag.Value { return secretValue{&c.RedisSentinelPassword} }},
		{flag: "redis-sentinel-password-file", env: "GATEHOUSE_REDIS_SENTINEL_PASSWORD_FILE", group: GroupServer | GroupRedis,
			usage: "`file` holding the sentinels' password",
			value: func(c *Config) flag.Value { return stringValue{&c.RedisSentinelPasswordFile} }},
		{flag: "redis-cluster-addrs", env: "GATEHOUSE_REDIS_CLUSTER_ADDRS", group: GroupServer | GroupRedis,
			usage: "Redis Cluster node `addresses`, comma-separated host:port",
			value: func(c *Config) flag.Value { return stringValue{&c.RedisClusterAddrs} }},
		{flag: "redis-tls-ca-file", env: "GATEHOUSE_REDIS_TLS_CA_FILE", group: GroupServer | GroupRedis,
			usage: "PEM `file` of the CAs that sign Redis's certificate (turns TLS on)",
			value: func(c *Config) flag.Value { return stringValue{&c.RedisTLSCAFile} }},
		{flag: "redis-tls-cert-file", env: "GATEHOUSE_REDIS_TLS_CERT_FILE", group: GroupServer | GroupRedis,
			usage: "PEM `file` of a client certificate for Redis (with --redis-tls-key-file)",
			value: func(c *Config) flag.Value { return stringValue{&c.RedisTLSCertFile} }},
		{flag: "redis-tls-key-file", env: "GATEHOUSE_REDIS_TLS_KEY_FILE", group: GroupServer | GroupRedis,
			usage: "PEM `file` of the client certificate's key",
			value: func(c *Config) flag.Value { return stringValue{&c.RedisTLSKeyFile} }},
		{flag: "redis-tls-server-name", env: "GATEHOUSE_REDIS_TLS_SERVER_NAME", group: GroupServer | GroupRedis,
			usage: "`name` Redis's certificate must carry (default: the host dialled)",
			value: func(c *Config) flag.Value { return stringValue{&c.RedisTLSServerName} }},
		{flag: "users-file", env: "GATEHOUSE_USERS_FILE", group: GroupServer,
			usage: "in-memory user directory from a JSON or YAML `file` of {id, active}",
			value: func(c *Config) flag.Value { return stringValue{&c.UsersFile} }},
		{flag: "cache-ttl", env: "GATEHOUSE_CACHE_TTL", group: GroupServer,
			usage: "how long an active user stays in the in-process cache (a `duration`)",
			value: func(c *Config) flag.Value { return durationValue{&c.CacheTTL} }},
		{flag: "cache-negative-ttl", env: "GATEHOUSE_CACHE_NEGATIVE_TTL", group: GroupServer,
			usage: "how long an unknown or inactive user stays in the in-process cache (a `duration`)",
			value: func(c *Config) flag.Value { return durationValue{&c.CacheNegativeTTL} }},
		{flag: "cache-size", env: "GATEHOUSE_CACHE_SIZE", group: GroupServer,
			usage: "maximum `entries` of the in-process cache",
			value: func(c *Config) flag.Value { return intValue{&c.CacheSize} }},
		{flag: "cache-stale-if-error", env: "GATEHOUSE_CACHE_STALE_IF_ERROR", group: GroupServer,
			usage: "how long past its TTL a cached entry may answer while Redis is down (a `duration`, 0: never)",
			value: func(c *Config) flag.Value { return durationValue{&c.CacheStaleIfError} }},
		{flag: "token-cache-size", env: "GATEHOUSE_TOKEN_CACHE_SIZE", group: GroupServer,
			usage: "maximum `entries` of the verified-token cache (0: verify every token in full)",
			value: func(c *Config) flag.Value { return intValue{&c.TokenCacheSize} }},
		{flag: "user-id-format", env: "GATEHOUSE_USER_ID_FORMAT", group: GroupServer | GroupRedis,
			usage: "user id `format`: uuid (normalised to canonical UUIDs) or opaque (used as they are)",
			value: func(c *Config) flag.Value { return stringValue{&c.UserIDFormat} }},
		{flag: "routes", env: "GATEHOUSE_ROUTES", group: GroupServer,
			usage: "route `table`: a built-in name (meet, authenticate) or a routes file (empty: authenticate everything)",
			value: func(c *Config) flag.Value { return stringValue{&c.Routes} }},
		{flag: "check-applications", env: "GATEHOUSE_CHECK_APPLICATIONS", group: GroupServer,
			usage: "refuse tokens whose client_id is not an active application of the directory",
			value: func(c *Config) flag.Value { return boolValue{&c.CheckApplications} }},
		{flag: "log-level", env: "GATEHOUSE_LOG_LEVEL", group: GroupServer,
			usage: "log `level`: debug, info, warn or error",
			value: func(c *Config) flag.Value { return levelValue{&c.LogLevel} }},
		{flag: "log-rate", env: "GATEHOUSE_LOG_RATE", group: GroupServer,
			usage: "most decision `lines` a listener logs per second below debug (denies, 503s); the rest are counted (0: none)",
			value: func(c *Config) flag.Value { return intValue{&c.LogRate} }},
		{flag: "log-format", env: "GATEHOUSE_LOG_FORMAT", group: GroupServer,
			usage: "log `format`: json or text",
			value: func(c *Config) flag.Value { return stringValue{&c.LogFormat} }},
		{flag: "grpc-reflection", env: "GATEHOUSE_GRPC_REFLECTION", group: GroupServer,
			usage: "serve the gRPC reflection service",
			value: func(c *Config) flag.Value { return boolValue{&c.GRPCReflection} }},
		{flag: "grpc-max-recv-size", env: "GATEHOUSE_GRPC_MAX_RECV_SIZE", group: GroupServer,
			usage: "largest CheckRequest read, a `size` (bytes, or with KiB, MiB, GiB; 4MiB to 1GiB); larger ones get a gRPC error: keep it above the proxy's headers and forwarded body",
			value: func(c *Config) flag.Value { return byteSizeValue{&c.GRPCMaxRecvSize} }},
		{flag: "grpc-max-connection-idle", env: "GATEHOUSE_GRPC_MAX_CONNECTION_IDLE", group: GroupServer,
			usage: "how long a gRPC connection may stay without a request before a graceful GOAWAY closes it (a `duration`)",
			value: func(c *Config) flag.Value { return durationValue{&c.GRPCMaxConnectionIdle} }},
		{flag: "realm", env: "GATEHOUSE_REALM", group: GroupServer, keepEmpty: true,
			usage: "`realm` of WWW-Authenticate challenges (empty: none)",
			value: func(c *Config) flag.Value { return stringValue{&c.Realm} }},
		{flag: "shutdown-timeout", env: "GATEHOUSE_SHUTDOWN_TIMEOUT", group: GroupServer,
			usage: "bound on the graceful stop after SIGTERM (a `duration`)",
			value: func(c *Config) flag.Value { return durationValue{&c.ShutdownTimeout} }},
		{flag: "header-user-id", env: "GATEHOUSE_HEADER_USER_ID", group: GroupServer,
			usage: "identity `header` carrying the user id",
			value: func(c *Config) flag.Value { return stringValue{&c.HeaderUserID} }},
		{flag: "header-client-id", env: "GATEHOUSE_HEADER_CLIENT_ID", group: GroupServer,
			usage: "identity `header` carrying the client id",
			value: func(c *Config) flag.Value { return stringValue{&c.HeaderClientID} }},
		{flag: "header-scope", env: "GATEHOUSE_HEADER_SCOPE", group: GroupServer,
			usage: "identity `header` carrying the token's scopes",
			value: func(c *Config) flag.Value { return stringValue{&c.HeaderScope} }},
		{flag: "otel-endpoint", env: "GATEHOUSE_OTEL_ENDPOINT", group: GroupServer,
			usage: "OTLP gRPC `endpoint` of the trace collector, host:port or URL (empty: tracing off)",
			value: func(c *Config) flag.Value { return stringValue{&c.OTelEndpoint} }},
		{flag: "otel-insecure", env: "GATEHOUSE_OTEL_INSECURE", group: GroupServer,
			usage: "send traces to the OTLP endpoint without TLS",
			value: func(c *Config) flag.Value { return boolValue{&c.OTelInsecure} }},
		{flag: "otel-sample-ratio", env: "GATEHOUSE_OTEL_SAMPLE_RATIO", group: GroupServer,
			usage: "`fraction` of new traces sampled, 0 to 1 (a caller's sampled traceparent is followed)",
			value: func(c *Config) flag.Value { return floatValue{&c.OTelSampleRatio} }},
	}
}

// Setting documents one setting for help texts and the README.
type Setting struct {
	Flag, Env, Default, Usage string
}

// Settings lists every setting with its flag, variable, default and meaning.
func Settings() []Setting {
	def := Default()
	var out []Setting
	for _, s := range settings() {
		out = append(out, Setting{Flag: s.flag, Env: s.env, Default: s.value(&def).String(), Usage: strings.ReplaceAll(s.usage, "`", "")})
	}
	return out
}

// Binding ties a Config to a flag set. Create it with Bind, parse the flag
// set, then call Finish.
type Binding struct {
	cfg      *Config
	fs       *flag.FlagSet
	settings []setting
	fromEnv  map[string]bool   // flag name -> set by its variable
	envErrs  map[string]error  // flag name -> its variable did not parse
	aliases  map[string]string // alias -> flag name
}

// Bind applies the environment (through lookup) to c for the settings of
// group, and registers their flags on fs, so that parsing fs afterwards lets a
// flag override the environment. An environment variable that does not parse
// is reported by Finish, after the flags, so that a flag can still override a
// broken variable.
func Bind(c *Config, fs *flag.FlagSet, group Group, lookup LookupFunc) *Binding {
	b := &Binding{
		cfg: c, fs: fs,
		fromEnv: map[string]bool{}, envErrs: map[string]error{}, aliases: map[string]string{},
	}
	if lookup == nil {
		lookup = func(string) (string, bool) { return "", false }
	}
	for _, s := range settings() {
		if s.group&group == 0 {
			continue
		}
		b.settings = append(b.settings, s)
		v := s.value(c)
		if raw, ok := lookup(s.env); ok && (raw != "" || s.keepEmpty) {
			b.fromEnv[s.flag] = true
			if err := v.Set(raw); err != nil {
				b.envErrs[s.flag] = fmt.Errorf("%s: %w", s.env, err)
			}
		}
		fs.Var(v, s.flag, s.usage+" (env "+s.env+")")
	}
	return b
}

// Alias registers another flag name for the bound setting called name (for
// example "issuer" for "jwt-issuer" in the token command).
func (b *Binding) Alias(alias, name string) error {
	for _, s := range b.settings {
		if s.flag == name {
			b.fs.Var(s.value(b.cfg), alias, "same as --"+name)
			b.aliases[alias] = name
			return nil
		}
	}
	return fmt.Errorf("config: no bound setting %q to alias", name)
}

// setByFlag reports whether the setting called name was given on the command
// line, under its name or an alias.
func (b *Binding) setByFlag(name string) bool {
	set := false
	b.fs.Visit(func(f *flag.Flag) {
		if f.Name == name || b.aliases[f.Name] == name {
			set = true
		}
	})
	return set
}

// Explicit reports whether the setting called name was set by a flag or an
// environment variable (call it after the flag set was parsed).
func (b *Binding) Explicit(name string) bool {
	return b.fromEnv[name] || b.setByFlag(name)
}

// Finish is called after the flag set was parsed: it reports the first
// environment variable that did not parse and was not overridden by its flag,
// then normalises the header names and applies the --dev defaults.
func (b *Binding) Finish() error {
	for _, s := range b.settings {
		if err := b.envErrs[s.flag]; err != nil && !b.setByFlag(s.flag) {
			return err
		}
	}
	c := b.cfg
	c.HeaderUserID = strings.ToLower(c.HeaderUserID)
	c.HeaderClientID = strings.ToLower(c.HeaderClientID)
	c.HeaderScope = strings.ToLower(c.HeaderScope)
	if c.Dev {
		if !b.Explicit("grpc-addr") {
			c.GRPCAddr = DefaultDevGRPCAddr
		}
		if !b.Explicit("ops-addr") {
			c.OpsAddr = DefaultDevOpsAddr
		}
		if !b.Explicit("http-addr") {
			c.HTTPAddr = DefaultDevHTTPAddr
		}
	}
	return nil
}

// Parse builds the Config of "gatehouse serve": defaults, then the
// environment, then args (which may include --dev). It checks syntax only;
// call Validate for the rest. It returns flag.ErrHelp when args ask for help,
// after printing the usage to output.
func Parse(args []string, lookup LookupFunc, output io.Writer) (Config, error) {
	c := Default()
	fs := flag.NewFlagSet("gatehouse serve", flag.ContinueOnError)
	if output == nil {
		output = io.Discard
	}
	fs.SetOutput(output)
	fs.BoolVar(&c.Dev, "dev", false, "development mode: random secret, demo users, loopback listeners")
	b := Bind(&c, fs, GroupAll, lookup)
	if err := ParseFlags(fs, args); err != nil {
		return Config{}, err
	}
	if err := b.Finish(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// ParseFlags parses args with fs and refuses positional arguments. Errors are
// single lines without the usage text (fs should print nothing but help).
func ParseFlags(fs *flag.FlagSet, args []string) error {
	out := fs.Output()
	// flag prints the error and the whole usage on a parse error; keep only
	// the help output for -h and return the error as one line.
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(out)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(out, "Usage of %s:\n", fs.Name())
		fs.PrintDefaults()
		return flag.ErrHelp
	}
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// HasSecret reports whether a JWT secret is configured (inline or by file).
func (c Config) HasSecret() bool { return c.JWTSecret != "" || c.JWTSecretFile != "" }

// Secret returns the HMAC key: the inline secret, or the secret file's
// content with one trailing newline ("\n" or "\r\n") removed. Errors name the
// file, never its content.
func (c Config) Secret() ([]byte, error) {
	switch {
	case c.JWTSecret != "" && c.JWTSecretFile != "":
		return nil, errors.New("set only one of GATEHOUSE_JWT_SECRET (--jwt-secret) and GATEHOUSE_JWT_SECRET_FILE (--jwt-secret-file)")
	case c.JWTSecret != "":
		return []byte(c.JWTSecret), nil
	case c.JWTSecretFile != "":
		b, err := os.ReadFile(c.JWTSecretFile)
		if err != nil {
			return nil, fmt.Errorf("JWT secret file: %w", fileError(err))
		}
		b = StripNewline(b)
		if len(b) == 0 {
			return nil, fmt.Errorf("JWT secret file %s is empty", c.JWTSecretFile)
		}
		return b, nil
	default:
		return nil, errors.New("no JWT secret: set GATEHOUSE_JWT_SECRET_FILE (--jwt-secret-file) or GATEHOUSE_JWT_SECRET (--jwt-secret)")
	}
}

// StripNewline removes exactly one trailing line ending, "\n" or "\r\n", the
// one that editors and "echo" add. Other trailing whitespace is kept: it is
// part of the key.
func StripNewline(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

// fileError keeps an *os.PathError's operation, path and reason on one line.
func fileError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s %s: %w", pe.Op, pe.Path, pe.Err)
	}
	return err
}

// JWT returns the token verification settings, reading the secret.
func (c Config) JWT() (authz.JWTConfig, error) {
	secret, err := c.Secret()
	if err != nil {
		return authz.JWTConfig{}, err
	}
	return authz.JWTConfig{
		Secret:     secret,
		Algorithm:  c.JWTAlgorithm,
		Issuer:     c.JWTIssuer,
		Audience:   c.JWTAudience,
		Leeway:     c.JWTLeeway,
		RequireExp: c.JWTRequireExp,
	}, nil
}

// IDFormat returns the parsed user id format (uuid when invalid; Validate
// reports that).
func (c Config) IDFormat() authz.IDFormat {
	f, _ := authz.ParseIDFormat(c.UserIDFormat)
	return f
}

// ValidateJWT checks the token settings only (what "gatehouse token" needs).
func (c Config) ValidateJWT() error {
	switch c.JWTAlgorithm {
	case "HS256", "HS384", "HS512":
	default:
		return fmt.Errorf("GATEHOUSE_JWT_ALGORITHM: unsupported algorithm %q (want HS256, HS384 or HS512)", c.JWTAlgorithm)
	}
	if !c.Dev || c.HasSecret() {
		if _, err := c.Secret(); err != nil {
			return err
		}
	}
	if c.JWTLeeway < 0 {
		return fmt.Errorf("GATEHOUSE_JWT_LEEWAY: must not be negative, got %s", c.JWTLeeway)
	}
	return nil
}

// Validate returns the first problem of c as a one-line error, or nil. It
// reads the secret file and checks that the users file can be opened; it
// never puts a secret in the error. Outside --dev, a Redis URL or a users
// file is required.
func (c Config) Validate() error { return c.validate(!c.Dev) }

// ValidateSuppliedDirectory is Validate for a caller that supplies its own
// directory: neither a Redis URL nor a users file is then required.
func (c Config) ValidateSuppliedDirectory() error { return c.validate(false) }

func (c Config) validate(needDirectory bool) error {
	if err := c.ValidateJWT(); err != nil {
		return err
	}
	if err := checkAddr("GATEHOUSE_GRPC_ADDR", c.GRPCAddr); err != nil {
		return err
	}
	if err := checkAddr("GATEHOUSE_OPS_ADDR", c.OpsAddr); err != nil {
		return err
	}
	if c.HTTPAddr != "" {
		if err := checkAddr("GATEHOUSE_HTTP_ADDR", c.HTTPAddr); err != nil {
			return err
		}
		if _, err := forwardauth.CleanPathPrefix(c.HTTPPathPrefix); err != nil {
			return fmt.Errorf("GATEHOUSE_HTTP_PATH_PREFIX: %w", err)
		}
	}
	if !(c.OTelSampleRatio >= 0 && c.OTelSampleRatio <= 1) { // NaN fails too
		return fmt.Errorf("GATEHOUSE_OTEL_SAMPLE_RATIO: must be between 0 and 1, got %v", c.OTelSampleRatio)
	}
	if c.UsesRedis() && c.UsersFile != "" {
		return errors.New("set only one of GATEHOUSE_REDIS_URL (--redis-url) and GATEHOUSE_USERS_FILE (--users-file)")
	}
	if !c.UsesRedis() && c.UsersFile == "" && needDirectory {
		return errors.New("no user directory: set GATEHOUSE_REDIS_URL (--redis-url) or GATEHOUSE_USERS_FILE (--users-file), or run serve --dev")
	}
	if c.UsesRedis() {
		if err := c.ValidateRedis(); err != nil {
			return err
		}
	}
	if c.UsersFile != "" {
		f, err := os.Open(c.UsersFile)
		if err != nil {
			return fmt.Errorf("users file: %w", fileError(err))
		}
		st, err := f.Stat()
		f.Close()
		if err != nil {
			return fmt.Errorf("users file: %w", fileError(err))
		}
		if st.IsDir() {
			return fmt.Errorf("users file %s is a directory", c.UsersFile)
		}
	}
	switch {
	case c.CacheTTL <= 0:
		return fmt.Errorf("GATEHOUSE_CACHE_TTL: must be positive, got %s", c.CacheTTL)
	case c.CacheNegativeTTL < 0:
		return fmt.Errorf("GATEHOUSE_CACHE_NEGATIVE_TTL: must not be negative, got %s", c.CacheNegativeTTL)
	case c.CacheStaleIfError < 0:
		return fmt.Errorf("GATEHOUSE_CACHE_STALE_IF_ERROR: must not be negative, got %s", c.CacheStaleIfError)
	case c.CacheSize < 1:
		return fmt.Errorf("GATEHOUSE_CACHE_SIZE: must be at least 1, got %d", c.CacheSize)
	case c.TokenCacheSize < 0:
		return fmt.Errorf("GATEHOUSE_TOKEN_CACHE_SIZE: must not be negative, got %d", c.TokenCacheSize)
	case c.LogRate < 0:
		return fmt.Errorf("GATEHOUSE_LOG_RATE: must not be negative, got %d", c.LogRate)
	case c.ShutdownTimeout <= 0:
		return fmt.Errorf("GATEHOUSE_SHUTDOWN_TIMEOUT: must be positive, got %s", c.ShutdownTimeout)
	case c.GRPCMaxRecvSize < MinGRPCMaxRecvSize || c.GRPCMaxRecvSize > MaxGRPCMaxRecvSize:
		return fmt.Errorf("GATEHOUSE_GRPC_MAX_RECV_SIZE: must be between 4MiB and 1GiB, got %s", formatByteSize(c.GRPCMaxRecvSize))
	case c.GRPCMaxConnectionIdle <= 0:
		return fmt.Errorf("GATEHOUSE_GRPC_MAX_CONNECTION_IDLE: must be positive, got %s", c.GRPCMaxConnectionIdle)
	}
	if _, err := authz.ParseIDFormat(c.UserIDFormat); err != nil || c.UserIDFormat == "" {
		return fmt.Errorf("GATEHOUSE_USER_ID_FORMAT: unknown format %q (want uuid or opaque)", c.UserIDFormat)
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		return fmt.Errorf("GATEHOUSE_LOG_FORMAT: unknown format %q (want json or text)", c.LogFormat)
	}
	if err := checkHeaders(c); err != nil {
		return err
	}
	for _, r := range c.Realm {
		if r < 0x20 || r > 0x7e {
			return errors.New("GATEHOUSE_REALM: only printable ASCII is allowed")
		}
	}
	return nil
}

func checkAddr(env, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return fmt.Errorf("%s: %q is not a host:port address", env, addr)
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("%s: %q has an invalid port", env, addr)
	}
	return nil
}

func checkRedisURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		// url's error quotes the whole URL, password included.
		return errors.New("GATEHOUSE_REDIS_URL: not a valid URL")
	}
	switch u.Scheme {
	case "redis", "rediss":
		if u.Host == "" {
			return errors.New("GATEHOUSE_REDIS_URL: missing host (want redis://[user:pass@]host:port/db)")
		}
	case "unix":
		if u.Path == "" {
			return errors.New("GATEHOUSE_REDIS_URL: missing socket path (want unix:///path/to/redis.sock)")
		}
	case "redis-sentinel", "rediss-sentinel", "redis-cluster", "rediss-cluster":
		// A host list: checked by the client builder, which parses it.
	default:
		return fmt.Errorf("GATEHOUSE_REDIS_URL: unsupported scheme %q (want redis, rediss, unix, redis-sentinel, rediss-sentinel, redis-cluster or rediss-cluster)", u.Scheme)
	}
	return nil
}

// reservedHeader reports whether an identity header must not be called name:
// it would replace a header the upstream relies on.
func reservedHeader(name string) bool {
	switch name {
	case "authorization", "proxy-authorization", "host", "cookie", "content-length",
		"content-type", "transfer-encoding", "connection", "te", "upgrade", "keep-alive":
		return true
	}
	return false
}

func checkHeaders(c Config) error {
	names := []struct{ env, name string }{
		{"GATEHOUSE_HEADER_USER_ID", c.HeaderUserID},
		{"GATEHOUSE_HEADER_CLIENT_ID", c.HeaderClientID},
		{"GATEHOUSE_HEADER_SCOPE", c.HeaderScope},
	}
	seen := map[string]string{}
	for _, n := range names {
		if !isToken(n.name) {
			return fmt.Errorf("%s: %q is not a valid header name", n.env, n.name)
		}
		if reservedHeader(n.name) {
			return fmt.Errorf("%s: %q is reserved", n.env, n.name)
		}
		if prev, ok := seen[n.name]; ok {
			return fmt.Errorf("%s: %q is already used by %s", n.env, n.name, prev)
		}
		seen[n.name] = n.env
	}
	return nil
}

// isToken reports whether s is a non-empty RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z', ch >= '0' && ch <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", ch) >= 0:
		default:
			return false
		}
	}
	return true
}

// RedactedRedisURL returns the Redis URL with its password (and any password
// query parameter) replaced by "REDACTED".
func (c Config) RedactedRedisURL() string {
	if c.RedisURL == "" {
		return ""
	}
	u, err := url.Parse(c.RedisURL)
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

// LogValue implements slog.LogValuer: every setting, secrets redacted.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("grpc_addr", c.GRPCAddr),
		slog.String("ops_addr", c.OpsAddr),
		slog.String("http_addr", c.HTTPAddr),
		slog.String("http_path_prefix", c.HTTPPathPrefix),
		slog.String("jwt_secret", c.JWTSecret.String()),
		slog.String("jwt_secret_file", c.JWTSecretFile),
		slog.String("jwt_algorithm", c.JWTAlgorithm),
		slog.String("jwt_issuer", c.JWTIssuer),
		slog.String("jwt_audience", c.JWTAudience),
		slog.String("jwt_leeway", c.JWTLeeway.String()),
		slog.Bool("jwt_require_exp", c.JWTRequireExp),
		slog.String("redis_url", c.RedactedRedisURL()),
		slog.String("redis_prefix", c.RedisPrefix),
		slog.String("redis_timeout", c.RedisTimeout.String()),
		slog.String("redis_username", c.RedisUsername),
		slog.String("redis_password", c.RedisPassword.String()),
		slog.String("redis_password_file", c.RedisPasswordFile),
		slog.String("redis_sentinel_master", c.RedisSentinelMaster),
		slog.String("redis_sentinel_addrs", c.RedisSentinelAddrs),
		slog.String("redis_sentinel_password", c.RedisSentinelPassword.String()),
		slog.String("redis_sentinel_password_file", c.RedisSentinelPasswordFile),
		slog.String("redis_cluster_addrs", c.RedisClusterAddrs),
		slog.String("redis_tls_ca_file", c.RedisTLSCAFile),
		slog.String("redis_tls_cert_file", c.RedisTLSCertFile),
		slog.String("redis_tls_key_file", c.RedisTLSKeyFile),
		slog.String("redis_tls_server_name", c.RedisTLSServerName),
		slog.String("users_file", c.UsersFile),
		slog.String("cache_ttl", c.CacheTTL.String()),
		slog.String("cache_negative_ttl", c.CacheNegativeTTL.String()),
		slog.Int("cache_size", c.CacheSize),
		slog.String("cache_stale_if_error", c.CacheStaleIfError.String()),
		slog.Int("token_cache_size", c.TokenCacheSize),
		slog.String("user_id_format", c.UserIDFormat),
		slog.String("routes", c.Routes),
		slog.Bool("check_applications", c.CheckApplications),
		slog.String("log_level", strings.ToLower(c.LogLevel.String())),
		slog.Int("log_rate", c.LogRate),
		slog.String("log_format", c.LogFormat),
		slog.Bool("grpc_reflection", c.GRPCReflection),
		slog.String("grpc_max_recv_size", formatByteSize(c.GRPCMaxRecvSize)),
		slog.String("grpc_max_connection_idle", c.GRPCMaxConnectionIdle.String()),
		slog.String("realm", c.Realm),
		slog.String("shutdown_timeout", c.ShutdownTimeout.String()),
		slog.String("header_user_id", c.HeaderUserID),
		slog.String("header_client_id", c.HeaderClientID),
		slog.String("header_scope", c.HeaderScope),
		slog.String("otel_endpoint", c.OTelEndpoint),
		slog.Bool("otel_insecure", c.OTelInsecure),
		slog.Float64("otel_sample_ratio", c.OTelSampleRatio),
		slog.Bool("dev", c.Dev),
	)
}

// String renders c on one line as key=value pairs, secrets redacted.
func (c Config) String() string {
	var b strings.Builder
	for i, a := range c.LogValue().Group() {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%q", a.Key, a.Value.String())
	}
	return b.String()
}

// GoString implements fmt.GoStringer so %#v redacts too.
func (c Config) GoString() string { return "config.Config{" + c.String() + "}" }
