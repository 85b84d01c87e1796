package server

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/authz/extauthz"
	"github.com/gatehouse-authz/gatehouse/authz/forwardauth"
	"github.com/gatehouse-authz/gatehouse/authz/oidc"
	"github.com/gatehouse-authz/gatehouse/internal/bytesize"
	"github.com/gatehouse-authz/gatehouse/internal/logbudget"
	"github.com/gatehouse-authz/gatehouse/userstore"
	"github.com/gatehouse-authz/gatehouse/userstore/pgorigin"
	"github.com/gatehouse-authz/gatehouse/userstore/redisstore"
)

// Defaults of the settings the server itself owns. The settings its parts
// own keep their parts' defaults (DefaultConfig lists them all).
const (
	DefaultGRPCAddr = ":9000"
	DefaultOpsAddr  = ":8081"
	DefaultHTTPAddr = ":8080"
	// DefaultCacheStaleIfError: a short Redis outage must not deny users
	// whose records were just seen.
	DefaultCacheStaleIfError = time.Minute
	DefaultShutdownTimeout   = 15 * time.Second
	// DefaultDrainPeriod covers how long Envoy keeps sending new
	// connections to a pod that said NOT_SERVING: a STRICT_DNS cluster
	// re-resolves every 5 s (dns_refresh_rate), an active health check
	// needs two failures at its interval (unhealthy_threshold), an
	// EndpointSlice update takes a few seconds to reach every proxy.
	DefaultDrainPeriod     = 10 * time.Second
	DefaultOTelSampleRatio = 1.0
	// DefaultGRPCMaxRecvSize is far above any CheckRequest a proxy sends,
	// a body forwarded by Envoy's with_request_body included, so that
	// gatehouse answers every request it can read (see
	// Config.GRPCMaxRecvSize).
	DefaultGRPCMaxRecvSize = 64 << 20
	// DefaultGRPCMaxConnectionIdle closes connections without a request
	// for a while; Envoy reconnects on its next request.
	DefaultGRPCMaxConnectionIdle = 5 * time.Minute
)

// Bounds of Config.GRPCMaxRecvSize. Below gRPC's own default of 4 MiB,
// ordinary requests would be refused with a gRPC error instead of being
// decided; above 1 GiB one request could hold most of a pod's memory.
const (
	MinGRPCMaxRecvSize = 4 << 20
	MaxGRPCMaxRecvSize = 1 << 30
)

// Config is what a Server is built from. cmd/gatehouse fills it from the
// GATEHOUSE_* settings; DefaultConfig gives the defaults. Secrets are
// already resolved: JWT.Secret and Redis hold the key and the passwords
// themselves, not the files naming them.
type Config struct {
	// GRPCAddr is the ext_authz gRPC listen address, OpsAddr the ops HTTP
	// one (/healthz, /readyz, /metrics), HTTPAddr the HTTP forward-auth
	// one (empty: no forward-auth listener).
	GRPCAddr string
	OpsAddr  string
	HTTPAddr string
	// HTTPPathPrefix is the path under which Envoy's http_service sends the
	// original request (and the path other proxies' subrequests use).
	HTTPPathPrefix string

	// JWT verifies the tokens; authz.New checks it.
	JWT authz.JWTConfig
	// UserIDFormat says how user ids are normalised before lookup.
	UserIDFormat authz.IDFormat
	// Routes is a built-in route table name or a routes file (see
	// routes.Resolve); empty: every request needs authentication.
	Routes string
	// CheckApplications checks the token's client_id against the
	// directory's applications (always on under the 2026.08 profile).
	CheckApplications bool
	// MeetProfile is the Meet release line the decisions follow;
	// Addons verifies add-on tokens (2026.08 only; no Secret: off), and
	// ScopesPrefix is stripped from tokens' scopes (2026.08 only).
	// authz.New checks them.
	MeetProfile  authz.Profile
	Addons       authz.JWTConfig
	ScopesPrefix string
	// JWTKeysFile and AddonsKeysFile, when set, name the files JWT's and
	// Addons' keys come from (authz.ParseKeys: one key, or a list of kid:
	// key lines under authz.KeysHeader). They are read at start, replacing
	// the Secret read before, and reloaded when they change ("keys").
	JWTKeysFile    string
	AddonsKeysFile string
	// OIDC, when its IntrospectionURL is set, accepts OIDC access tokens
	// by introspection (2026.08 only; docs/oidc.md): the last token kind.
	// Its Shared, Observer and Logger are the server's to set; oidc.New
	// checks the rest.
	OIDC oidc.Config
	// TokenCacheSize bounds the verified-token cache (0: none).
	TokenCacheSize int

	// UsersFile is a JSON or YAML file of records, loaded into an in-memory
	// directory. Redis, when set, is the Redis directory instead (set at
	// most one; Options.Directory replaces both).
	UsersFile string
	Redis     *redisstore.ClientConfig
	// RedisPrefix is prepended to every Redis key; RedisTimeout bounds one
	// Redis lookup (the request's deadline, when shorter, wins).
	RedisPrefix  string
	RedisTimeout time.Duration
	// CacheTTL, CacheNegativeTTL (0: not cached) and CacheSize configure
	// the in-process cache in front of Redis; CacheStaleIfError is how long
	// an expired entry may still be served while Redis cannot answer (0:
	// never).
	CacheTTL          time.Duration
	CacheNegativeTTL  time.Duration
	CacheSize         int
	CacheStaleIfError time.Duration

	// DirectoryOrigin, when set, is the directory of record: a
	// postgres:// or postgresql:// URL (Meet's database, read through
	// DirectoryUserQuery and DirectoryAppQuery; DirectoryOriginPassword,
	// when set, replaces the URL's password) or a grpc:// or grpcs:// one
	// (a DirectoryService; DirectoryOriginCAFile, for grpcs, names the CAs
	// to trust). Lookups then go through the in-process cache, then Redis
	// when set (the origin's answers are written there for RedisCacheTTL,
	// or RedisCacheNegativeTTL for unknown and inactive records; 0: not
	// written), then the origin. UsersFile must be empty.
	DirectoryOrigin         string
	DirectoryOriginPassword string
	DirectoryOriginCAFile   string
	DirectoryUserQuery      string
	DirectoryAppQuery       string
	// DirectorySubQuery finds a user by OIDC sub in a postgres:// origin
	// (pgorigin.DefaultSubQuery when empty); only prepared when OIDC
	// access tokens are on.
	DirectorySubQuery     string
	RedisCacheTTL         time.Duration
	RedisCacheNegativeTTL time.Duration

	// LogRate caps the decision lines each listener writes per second
	// below debug level (0: none); the rest are counted.
	LogRate int

	// OmitDynamicMetadata leaves CheckResponse.dynamic_metadata out of the
	// ext_authz answers (extauthz.Options.OmitDynamicMetadata).
	OmitDynamicMetadata bool
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
	// ShutdownTimeout bounds the graceful stop; in-flight requests still
	// running then are cut.
	ShutdownTimeout time.Duration
	// DrainPeriod is how long the server keeps serving, new connections
	// included, after health turned NOT_SERVING and /readyz 503 at the
	// start of a shutdown, while proxies stop sending it work; the
	// graceful stop follows (0: at once).
	DrainPeriod time.Duration

	// TLSCertFile and TLSKeyFile, set together, turn TLS on for the gRPC
	// and forward-auth listeners (the ops listener stays plain, for the
	// kubelet's probes and Prometheus). TLSClientCAFile, when set, asks
	// every client for a certificate signed by one of its CAs (mutual
	// TLS). The files are reloaded when they change.
	TLSCertFile     string
	TLSKeyFile      string
	TLSClientCAFile string

	// HeaderUserID, HeaderClientID and HeaderScope name the identity
	// headers added to allowed requests (lower case).
	HeaderUserID   string
	HeaderClientID string
	HeaderScope    string

	// OTelEndpoint is the OTLP gRPC trace collector (host:port or URL);
	// empty turns tracing off. OTelInsecure sends spans without TLS;
	// OTelSampleRatio is the fraction of new traces sampled.
	OTelEndpoint    string
	OTelInsecure    bool
	OTelSampleRatio float64
}

// DefaultConfig returns the defaults: each part's own (authz, userstore,
// redisstore, extauthz, forwardauth, logbudget) and the server's. It has no
// JWT secret and no directory.
func DefaultConfig() Config {
	return Config{
		GRPCAddr:       DefaultGRPCAddr,
		OpsAddr:        DefaultOpsAddr,
		HTTPAddr:       DefaultHTTPAddr,
		HTTPPathPrefix: forwardauth.DefaultPathPrefix,
		JWT:            authz.JWTConfig{Algorithm: authz.DefaultAlgorithm, Issuer: authz.DefaultIssuer},
		Addons: authz.JWTConfig{Algorithm: authz.DefaultAddonsAlgorithm, Issuer: authz.DefaultAddonsIssuer,
			Audience: authz.DefaultAddonsAudience},
		UserIDFormat:          authz.IDFormatUUID,
		TokenCacheSize:        authz.DefaultTokenCacheSize,
		RedisPrefix:           redisstore.DefaultPrefix,
		RedisTimeout:          userstore.DefaultLookupTimeout,
		CacheTTL:              userstore.DefaultTTL,
		CacheNegativeTTL:      userstore.DefaultNegativeTTL,
		CacheSize:             userstore.DefaultCacheSize,
		CacheStaleIfError:     DefaultCacheStaleIfError,
		DirectoryUserQuery:    pgorigin.DefaultUserQuery,
		DirectoryAppQuery:     pgorigin.DefaultAppQuery,
		DirectorySubQuery:     pgorigin.DefaultSubQuery,
		RedisCacheTTL:         userstore.DefaultSharedTTL,
		RedisCacheNegativeTTL: userstore.DefaultSharedNegativeTTL,
		LogRate:               logbudget.DefaultPerSecond,
		GRPCMaxRecvSize:       DefaultGRPCMaxRecvSize,
		GRPCMaxConnectionIdle: DefaultGRPCMaxConnectionIdle,
		ShutdownTimeout:       DefaultShutdownTimeout,
		DrainPeriod:           DefaultDrainPeriod,
		HeaderUserID:          extauthz.DefaultUserIDHeader,
		HeaderClientID:        extauthz.DefaultClientIDHeader,
		HeaderScope:           extauthz.DefaultScopeHeader,
		OTelSampleRatio:       DefaultOTelSampleRatio,
	}
}

// A ConfigError is a problem with one Config field. With names a second
// field when the problem is a conflict between the two; the message then
// ends with it.
type ConfigError struct {
	Field string
	With  string
	Err   error
}

func (e *ConfigError) Error() string {
	if e.With != "" {
		return e.Field + ": " + e.Err.Error() + " " + e.With
	}
	return e.Field + ": " + e.Err.Error()
}

func (e *ConfigError) Unwrap() error { return e.Err }

func fieldError(field, format string, args ...any) error {
	return &ConfigError{Field: field, Err: fmt.Errorf(format, args...)}
}

// Validate returns the first problem of c as a *ConfigError, or nil. It
// reads no file and dials nothing; JWT is checked by authz.New and the
// Redis client's files when it is built. New calls it.
func (c Config) Validate() error {
	for _, check := range []func() error{c.validateListeners, c.validateDirectory, c.validateLimits, c.validateHeaders} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

func (c Config) validateListeners() error {
	if err := checkAddr("GRPCAddr", c.GRPCAddr); err != nil {
		return err
	}
	if err := checkAddr("OpsAddr", c.OpsAddr); err != nil {
		return err
	}
	switch {
	case c.TLSCertFile != "" && c.TLSKeyFile == "":
		return &ConfigError{Field: "TLSKeyFile", Err: errors.New("must be set with"), With: "TLSCertFile"}
	case c.TLSKeyFile != "" && c.TLSCertFile == "":
		return &ConfigError{Field: "TLSCertFile", Err: errors.New("must be set with"), With: "TLSKeyFile"}
	case c.TLSClientCAFile != "" && c.TLSCertFile == "":
		return &ConfigError{Field: "TLSClientCAFile", Err: errors.New("needs TLS on: set"), With: "TLSCertFile"}
	}
	if c.HTTPAddr == "" {
		return nil
	}
	if err := checkAddr("HTTPAddr", c.HTTPAddr); err != nil {
		return err
	}
	if _, err := forwardauth.CleanPathPrefix(c.HTTPPathPrefix); err != nil {
		return &ConfigError{Field: "HTTPPathPrefix", Err: err}
	}
	return nil
}

func checkAddr(field, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return fieldError(field, "%q is not a host:port address", addr)
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fieldError(field, "%q has an invalid port", addr)
	}
	return nil
}

func (c Config) validateDirectory() error {
	if c.Redis != nil && c.UsersFile != "" {
		return &ConfigError{Field: "UsersFile", Err: errors.New("set only one of this and"), With: "Redis"}
	}
	if err := c.validateOrigin(); err != nil {
		return err
	}
	if c.Redis != nil {
		if err := c.Redis.Validate(); err != nil {
			return &ConfigError{Field: "Redis", Err: err}
		}
		if c.RedisTimeout <= 0 {
			return fieldError("RedisTimeout", "must be positive, got %s", c.RedisTimeout)
		}
	}
	switch {
	case c.CacheTTL <= 0:
		return fieldError("CacheTTL", "must be positive, got %s", c.CacheTTL)
	case c.CacheNegativeTTL < 0:
		return fieldError("CacheNegativeTTL", "must not be negative, got %s", c.CacheNegativeTTL)
	case c.CacheStaleIfError < 0:
		return fieldError("CacheStaleIfError", "must not be negative, got %s", c.CacheStaleIfError)
	case c.CacheSize < 1:
		return fieldError("CacheSize", "must be at least 1, got %d", c.CacheSize)
	}
	return nil
}

// originKind returns "postgres" or "grpc" for the origin's URL scheme, ""
// for none or another.
func originKind(rawURL string) string {
	scheme, _, _ := strings.Cut(rawURL, "://")
	switch scheme {
	case "postgres", "postgresql":
		return "postgres"
	case "grpc", "grpcs":
		return "grpc"
	}
	return ""
}

// validateOrigin checks the directory origin's settings; the URL's details
// are checked by pgorigin and grpcorigin when the server connects.
func (c Config) validateOrigin() error {
	if c.DirectoryOrigin == "" {
		return nil
	}
	kind := originKind(c.DirectoryOrigin)
	switch {
	case kind == "":
		// Never the URL itself: it may hold a password.
		scheme, _, found := strings.Cut(c.DirectoryOrigin, "://")
		if !found || len(scheme) > 20 || strings.Trim(scheme, "abcdefghijklmnopqrstuvwxyz0123456789+.-") != "" {
			scheme = "(none)"
		}
		return fieldError("DirectoryOrigin", "scheme %q: want postgres://, postgresql://, grpc:// or grpcs://", scheme)
	case c.UsersFile != "":
		return &ConfigError{Field: "UsersFile", Err: errors.New("is a directory of its own: set only one of this and"), With: "DirectoryOrigin"}
	case c.DirectoryOriginPassword != "" && kind != "postgres":
		return fieldError("DirectoryOrigin", "a password file is set, but only a postgres:// origin takes one")
	case c.DirectoryOriginCAFile != "" && !strings.HasPrefix(c.DirectoryOrigin, "grpcs://"):
		return fieldError("DirectoryOriginCAFile", "is for a grpcs:// origin only")
	case kind == "postgres" && strings.TrimSpace(c.DirectoryUserQuery) == "":
		return fieldError("DirectoryUserQuery", "must not be empty")
	case kind == "postgres" && strings.TrimSpace(c.DirectoryAppQuery) == "":
		return fieldError("DirectoryAppQuery", "must not be empty")
	case c.Redis != nil && c.RedisCacheTTL <= 0:
		return fieldError("RedisCacheTTL", "must be positive, got %s", c.RedisCacheTTL)
	case c.Redis != nil && c.RedisCacheNegativeTTL < 0:
		return fieldError("RedisCacheNegativeTTL", "must not be negative, got %s", c.RedisCacheNegativeTTL)
	}
	return nil
}

func (c Config) validateLimits() error {
	switch {
	case c.TokenCacheSize < 0:
		return fieldError("TokenCacheSize", "must not be negative, got %d", c.TokenCacheSize)
	case c.LogRate < 0:
		return fieldError("LogRate", "must not be negative, got %d", c.LogRate)
	case c.ShutdownTimeout <= 0:
		return fieldError("ShutdownTimeout", "must be positive, got %s", c.ShutdownTimeout)
	case c.DrainPeriod < 0:
		return fieldError("DrainPeriod", "must not be negative, got %s", c.DrainPeriod)
	case c.GRPCMaxRecvSize < MinGRPCMaxRecvSize || c.GRPCMaxRecvSize > MaxGRPCMaxRecvSize:
		return fieldError("GRPCMaxRecvSize", "must be between %s and %s, got %s",
			bytesize.Format(MinGRPCMaxRecvSize), bytesize.Format(MaxGRPCMaxRecvSize), bytesize.Format(c.GRPCMaxRecvSize))
	case c.GRPCMaxConnectionIdle <= 0:
		return fieldError("GRPCMaxConnectionIdle", "must be positive, got %s", c.GRPCMaxConnectionIdle)
	case !(c.OTelSampleRatio >= 0 && c.OTelSampleRatio <= 1): // NaN fails too
		return fieldError("OTelSampleRatio", "must be between 0 and 1, got %v", c.OTelSampleRatio)
	}
	return nil
}

func (c Config) validateHeaders() error {
	for _, r := range c.Realm {
		if r < 0x20 || r > 0x7e {
			return fieldError("Realm", "only printable ASCII is allowed")
		}
	}
	names := []struct{ field, name string }{
		{"HeaderUserID", c.HeaderUserID},
		{"HeaderClientID", c.HeaderClientID},
		{"HeaderScope", c.HeaderScope},
	}
	seen := map[string]string{}
	for _, n := range names {
		if !authz.IsToken(n.name) {
			return fieldError(n.field, "%q is not a valid header name", n.name)
		}
		if reservedHeader(n.name) {
			return fieldError(n.field, "%q is reserved", n.name)
		}
		if prev, ok := seen[n.name]; ok {
			return &ConfigError{Field: n.field, Err: fmt.Errorf("%q is already used by", n.name), With: prev}
		}
		seen[n.name] = n.field
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

// minSecretLen is the HMAC key length RFC 7518 §3.2 requires: the size of the
// hash output.
func minSecretLen(alg string) int {
	switch alg {
	case "HS384":
		return 48
	case "HS512":
		return 64
	default:
		return 32
	}
}
