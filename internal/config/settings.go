package config

import (
	"flag"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/authz/extauthz"
	"github.com/gatehouse-authz/gatehouse/authz/forwardauth"
	"github.com/gatehouse-authz/gatehouse/authz/oidc"
	"github.com/gatehouse-authz/gatehouse/internal/bytesize"
	"github.com/gatehouse-authz/gatehouse/internal/logbudget"
	"github.com/gatehouse-authz/gatehouse/server"
	"github.com/gatehouse-authz/gatehouse/userstore"
	"github.com/gatehouse-authz/gatehouse/userstore/pgorigin"
	"github.com/gatehouse-authz/gatehouse/userstore/redisstore"
)

// Owners of settings: the component whose default a setting takes and which
// checks its value.
const (
	ownerServer      = "server"
	ownerAuthz       = "authz"
	ownerExtAuthz    = "authz/extauthz"
	ownerForwardAuth = "authz/forwardauth"
	ownerUserstore   = "userstore"
	ownerRedisstore  = "userstore/redisstore"
	ownerPgorigin    = "userstore/pgorigin"
	ownerGrpcorigin  = "userstore/grpcorigin"
	ownerOIDC        = "authz/oidc"
	ownerLogbudget   = "internal/logbudget"
	ownerCommand     = "cmd/gatehouse"
)

// setting describes one configuration value. The table of them, settings,
// is the one source of the flags, the environment variables, the defaults,
// the help text, the logged configuration (LogValue) and the check for
// unknown variables; tests hold docs/configuration.md's table and the chart to it.
type setting struct {
	flag  string
	env   string
	usage string
	// def is the default as the flag prints it, taken from the owner's
	// constant; Default parses it.
	def   string
	group Group
	// keepEmpty: an environment variable set to "" sets the value to "";
	// otherwise an empty variable counts as unset (the usual reading of
	// "FOO=" in container manifests).
	keepEmpty bool
	// owner is the component that owns the default and the check.
	owner string
	// field is the server.Config field the setting becomes, so that the
	// server's *ConfigError can name the variable ("" when it has none).
	field string
	value func(c *Config) flag.Value
}

// secret reports whether the setting's value is redacted wherever it is
// printed.
func (s setting) secret() bool {
	_, ok := s.value(&Config{}).(secretValue)
	return ok
}

func dur(d time.Duration) string { return d.String() }

// settings is the table of every setting, in the order they are documented.
// It is rebuilt per call so that no package state is shared.
func settings() []setting {
	return []setting{
		{flag: "grpc-addr", env: "GATEHOUSE_GRPC_ADDR", group: GroupServer, owner: ownerServer, field: "GRPCAddr",
			def:   server.DefaultGRPCAddr,
			usage: "ext_authz gRPC listen `address` (host:port)",
			value: func(c *Config) flag.Value { return stringValue{&c.GRPCAddr} }},
		{flag: "ops-addr", env: "GATEHOUSE_OPS_ADDR", group: GroupServer, owner: ownerServer, field: "OpsAddr",
			def:   server.DefaultOpsAddr,
			usage: "ops HTTP listen `address` (/healthz, /readyz)",
			value: func(c *Config) flag.Value { return stringValue{&c.OpsAddr} }},
		{flag: "http-addr", env: "GATEHOUSE_HTTP_ADDR", group: GroupServer, keepEmpty: true, owner: ownerServer, field: "HTTPAddr",
			def:   server.DefaultHTTPAddr,
			usage: "HTTP forward-auth listen `address` (empty: no forward-auth listener)",
			value: func(c *Config) flag.Value { return stringValue{&c.HTTPAddr} }},
		{flag: "http-path-prefix", env: "GATEHOUSE_HTTP_PATH_PREFIX", group: GroupServer, owner: ownerForwardAuth, field: "HTTPPathPrefix",
			def:   forwardauth.DefaultPathPrefix,
			usage: "forward-auth `path` prefix (Envoy http_service path_prefix; the subrequest path of nginx, Traefik, Caddy)",
			value: func(c *Config) flag.Value { return stringValue{&c.HTTPPathPrefix} }},
		{flag: "jwt-secret", env: "GATEHOUSE_JWT_SECRET", group: GroupJWT, owner: ownerAuthz,
			usage: "HMAC `key` of delegation tokens (prefer --jwt-secret-file: flags show in ps)",
			value: func(c *Config) flag.Value { return secretValue{&c.JWTSecret} }},
		{flag: "jwt-secret-file", env: "GATEHOUSE_JWT_SECRET_FILE", group: GroupJWT, owner: ownerAuthz,
			usage: "`file` holding the HMAC key (one trailing newline stripped)",
			value: func(c *Config) flag.Value { return stringValue{&c.JWTSecretFile} }},
		{flag: "jwt-algorithm", env: "GATEHOUSE_JWT_ALGORITHM", group: GroupJWT, owner: ownerAuthz,
			def:   authz.DefaultAlgorithm,
			usage: "the one accepted JWT `algorithm`: HS256, HS384 or HS512",
			value: func(c *Config) flag.Value { return stringValue{&c.JWTAlgorithm} }},
		{flag: "jwt-issuer", env: "GATEHOUSE_JWT_ISSUER", group: GroupJWT, keepEmpty: true, owner: ownerAuthz,
			def:   authz.DefaultIssuer,
			usage: "required iss claim, the `issuer` (empty: no issuer check)",
			value: func(c *Config) flag.Value { return stringValue{&c.JWTIssuer} }},
		{flag: "jwt-audience", env: "GATEHOUSE_JWT_AUDIENCE", group: GroupJWT, keepEmpty: true, owner: ownerAuthz,
			usage: "required aud claim, the `audience` (empty: tokens with an aud are refused)",
			value: func(c *Config) flag.Value { return stringValue{&c.JWTAudience} }},
		{flag: "jwt-leeway", env: "GATEHOUSE_JWT_LEEWAY", group: GroupJWT, owner: ownerAuthz,
			def:   dur(0),
			usage: "clock skew allowed on exp, nbf and iat (a `duration`)",
			value: func(c *Config) flag.Value { return durationValue{&c.JWTLeeway} }},
		{flag: "jwt-require-exp", env: "GATEHOUSE_JWT_REQUIRE_EXP", group: GroupJWT, owner: ownerAuthz,
			def:   "false",
			usage: "refuse tokens without an exp claim",
			value: func(c *Config) flag.Value { return boolValue{&c.JWTRequireExp} }},
		{flag: "meet-profile", env: "GATEHOUSE_MEET_PROFILE", group: GroupServer, owner: ownerAuthz, field: "MeetProfile",
			def:   authz.ProfileName202510,
			usage: "the Meet release line whose external API the decisions follow, a `profile`: " + authz.ProfileName202510 + " or " + authz.ProfileName202608,
			value: func(c *Config) flag.Value { return stringValue{&c.MeetProfile} }},
		{flag: "addons-jwt-secret", env: "GATEHOUSE_ADDONS_JWT_SECRET", group: GroupJWT, owner: ownerAuthz,
			usage: "HMAC `key` of add-on tokens, tried after delegation tokens (" + authz.ProfileName202608 + " profile; empty: no add-on tokens; prefer --addons-jwt-secret-file)",
			value: func(c *Config) flag.Value { return secretValue{&c.AddonsJWTSecret} }},
		{flag: "addons-jwt-secret-file", env: "GATEHOUSE_ADDONS_JWT_SECRET_FILE", group: GroupJWT, owner: ownerAuthz,
			usage: "`file` holding the add-on HMAC key (one trailing newline stripped)",
			value: func(c *Config) flag.Value { return stringValue{&c.AddonsJWTSecretFile} }},
		{flag: "addons-jwt-algorithm", env: "GATEHOUSE_ADDONS_JWT_ALGORITHM", group: GroupJWT, owner: ownerAuthz,
			def:   authz.DefaultAddonsAlgorithm,
			usage: "the one accepted `algorithm` of add-on tokens: HS256, HS384 or HS512",
			value: func(c *Config) flag.Value { return stringValue{&c.AddonsJWTAlgorithm} }},
		{flag: "addons-jwt-issuer", env: "GATEHOUSE_ADDONS_JWT_ISSUER", group: GroupJWT, keepEmpty: true, owner: ownerAuthz,
			def:   authz.DefaultAddonsIssuer,
			usage: "required iss of add-on tokens, the `issuer` (empty: no issuer check)",
			value: func(c *Config) flag.Value { return stringValue{&c.AddonsJWTIssuer} }},
		{flag: "addons-jwt-audience", env: "GATEHOUSE_ADDONS_JWT_AUDIENCE", group: GroupJWT, keepEmpty: true, owner: ownerAuthz,
			def:   authz.DefaultAddonsAudience,
			usage: "required aud of add-on tokens, the `audience` (empty: add-on tokens with an aud are refused)",
			value: func(c *Config) flag.Value { return stringValue{&c.AddonsJWTAudience} }},
		{flag: "scopes-prefix", env: "GATEHOUSE_SCOPES_PREFIX", group: GroupServer, owner: ownerAuthz, field: "ScopesPrefix",
			usage: "`prefix` removed, with a colon, from the front of each scope of a token (" + authz.ProfileName202608 + " profile; Meet's OIDC_RS_SCOPES_PREFIX)",
			value: func(c *Config) flag.Value { return stringValue{&c.ScopesPrefix} }},
		{flag: "oidc-introspection-url", env: "GATEHOUSE_OIDC_INTROSPECTION_URL", group: GroupServer, owner: ownerOIDC,
			usage: "the identity provider's token introspection `url` (" + authz.ProfileName202608 + " profile; Meet's OIDC_OP_INTROSPECTION_ENDPOINT); set: OIDC access tokens are accepted (empty: refused)",
			value: func(c *Config) flag.Value { return urlValue{&c.OIDC.IntrospectionURL} }},
		{flag: "oidc-issuer", env: "GATEHOUSE_OIDC_ISSUER", group: GroupServer, owner: ownerOIDC,
			usage: "the provider's `url`, the iss of its answers (Meet's OIDC_OP_URL)",
			value: func(c *Config) flag.Value { return stringValue{&c.OIDC.Issuer} }},
		{flag: "oidc-client-id", env: "GATEHOUSE_OIDC_CLIENT_ID", group: GroupServer, owner: ownerOIDC,
			def:   oidc.DefaultClientID,
			usage: "the `id` gatehouse introspects as (Meet's OIDC_RS_CLIENT_ID)",
			value: func(c *Config) flag.Value { return stringValue{&c.OIDC.ClientID} }},
		{flag: "oidc-client-secret", env: "GATEHOUSE_OIDC_CLIENT_SECRET", group: GroupServer, owner: ownerOIDC,
			usage: "the client's `secret` at the provider (Meet's OIDC_RS_CLIENT_SECRET; prefer --oidc-client-secret-file)",
			value: func(c *Config) flag.Value { return secretValue{&c.OIDCClientSecret} }},
		{flag: "oidc-client-secret-file", env: "GATEHOUSE_OIDC_CLIENT_SECRET_FILE", group: GroupServer, owner: ownerOIDC,
			usage: "`file` holding the client's secret (one trailing newline stripped)",
			value: func(c *Config) flag.Value { return stringValue{&c.OIDCClientSecretFile} }},
		{flag: "oidc-client-auth", env: "GATEHOUSE_OIDC_CLIENT_AUTH", group: GroupServer, owner: ownerOIDC,
			def:   oidc.ClientSecretPost,
			usage: "how the client authenticates, a `method`: " + oidc.ClientSecretPost + " (as Meet) or " + oidc.ClientSecretBasic,
			value: func(c *Config) flag.Value { return stringValue{&c.OIDC.ClientAuth} }},
		{flag: "oidc-required-scopes", env: "GATEHOUSE_OIDC_REQUIRED_SCOPES", group: GroupServer, owner: ownerOIDC,
			def:   oidc.DefaultRequiredScope,
			usage: "`scopes` (comma- or space-separated) of which an access token must have one (Meet's OIDC_RS_SCOPES)",
			value: func(c *Config) flag.Value { return stringValue{&c.OIDCRequiredScopes} }},
		{flag: "oidc-audience-claim", env: "GATEHOUSE_OIDC_AUDIENCE_CLAIM", group: GroupServer, owner: ownerOIDC,
			def:   oidc.DefaultAudienceClaim,
			usage: "the introspection answer's `claim` naming the calling application, sent as the client id (Meet's OIDC_RS_AUDIENCE_CLAIM)",
			value: func(c *Config) flag.Value { return stringValue{&c.OIDC.AudienceClaim} }},
		{flag: "oidc-timeout", env: "GATEHOUSE_OIDC_TIMEOUT", group: GroupServer, owner: ownerOIDC,
			def:   dur(oidc.DefaultTimeout),
			usage: "bound on one introspection or JWKS request (a `duration`; Meet's OIDC_TIMEOUT)",
			value: func(c *Config) flag.Value { return durationValue{&c.OIDC.Timeout} }},
		{flag: "oidc-ca-file", env: "GATEHOUSE_OIDC_CA_FILE", group: GroupServer, owner: ownerOIDC,
			usage: "PEM `file` of the CAs that sign the provider's certificate (default: the system's)",
			value: func(c *Config) flag.Value { return stringValue{&c.OIDC.CAFile} }},
		{flag: "oidc-jwks-url", env: "GATEHOUSE_OIDC_JWKS_URL", group: GroupServer, owner: ownerOIDC,
			usage: "the provider's JWKS `url` (Meet's OIDC_OP_JWKS_ENDPOINT); set: introspection answers must be signed JWTs (RFC 9701)",
			value: func(c *Config) flag.Value { return urlValue{&c.OIDC.JWKSURL} }},
		{flag: "oidc-signing-algorithm", env: "GATEHOUSE_OIDC_SIGNING_ALGORITHM", group: GroupServer, owner: ownerOIDC,
			def:   oidc.DefaultSigningAlgorithm,
			usage: "the one accepted `algorithm` of signed answers (Meet's OIDC_RS_SIGNING_ALGO)",
			value: func(c *Config) flag.Value { return stringValue{&c.OIDC.SigningAlgorithm} }},
		{flag: "oidc-encryption-key-file", env: "GATEHOUSE_OIDC_ENCRYPTION_KEY_FILE", group: GroupServer, owner: ownerOIDC,
			usage: "PEM `file` of gatehouse's private key (RSA or EC) the provider encrypts answers to (Meet's OIDC_RS_PRIVATE_KEY_STR); set: answers must be encrypted",
			value: func(c *Config) flag.Value { return stringValue{&c.OIDCEncryptionKeyFile} }},
		{flag: "oidc-encryption-algorithm", env: "GATEHOUSE_OIDC_ENCRYPTION_ALGORITHM", group: GroupServer, owner: ownerOIDC,
			def:   oidc.DefaultEncryptionAlgorithm,
			usage: "the one accepted key-management `algorithm` of encrypted answers (Meet's OIDC_RS_ENCRYPTION_ALGO)",
			value: func(c *Config) flag.Value { return stringValue{&c.OIDC.EncryptionAlgorithm} }},
		{flag: "oidc-encryption-encoding", env: "GATEHOUSE_OIDC_ENCRYPTION_ENCODING", group: GroupServer, owner: ownerOIDC,
			def:   oidc.DefaultEncryptionEncoding,
			usage: "the one accepted content `encryption` of encrypted answers (Meet's OIDC_RS_ENCRYPTION_ENCODING)",
			value: func(c *Config) flag.Value { return stringValue{&c.OIDC.EncryptionEncoding} }},
		{flag: "oidc-cache-ttl", env: "GATEHOUSE_OIDC_CACHE_TTL", group: GroupServer, owner: ownerOIDC,
			def:   dur(oidc.DefaultCacheTTL),
			usage: "how long an active verdict is cached, in process and in Redis (at most until the token's exp; a `duration`)",
			value: func(c *Config) flag.Value { return durationValue{&c.OIDC.CacheTTL} }},
		{flag: "oidc-negative-cache-ttl", env: "GATEHOUSE_OIDC_NEGATIVE_CACHE_TTL", group: GroupServer, owner: ownerOIDC,
			def:   dur(oidc.DefaultNegativeCacheTTL),
			usage: "how long a refused token's verdict is cached (a `duration`; 0: not cached)",
			value: func(c *Config) flag.Value { return durationValue{&c.OIDC.NegativeCacheTTL} }},
		{flag: "redis-url", env: "GATEHOUSE_REDIS_URL", group: GroupServer | GroupRedis, owner: ownerRedisstore, field: "Redis",
			usage: "user directory in Redis, a `url`: redis://[user:pass@]host:port/db, rediss://, unix://, redis-sentinel://, redis-cluster:// (empty: no Redis)",
			value: func(c *Config) flag.Value { return urlValue{&c.RedisURL} }},
		{flag: "redis-prefix", env: "GATEHOUSE_REDIS_PREFIX", group: GroupServer | GroupRedis, keepEmpty: true, owner: ownerRedisstore, field: "RedisPrefix",
			def:   redisstore.DefaultPrefix,
			usage: "`prefix` of every Redis key",
			value: func(c *Config) flag.Value { return stringValue{&c.RedisPrefix} }},
		{flag: "redis-timeout", env: "GATEHOUSE_REDIS_TIMEOUT", group: GroupServer | GroupRedis, owner: ownerUserstore, field: "RedisTimeout",
			def:   dur(userstore.DefaultLookupTimeout),
			usage: "bound on one Redis lookup (a `duration`)",
			value: func(c *Config) flag.Value { return durationValue{&c.RedisTimeout} }},
		{flag: "redis-username", env: "GATEHOUSE_REDIS_USERNAME", group: GroupServer | GroupRedis, owner: ownerRedisstore,
			usage: "Redis ACL `user` (overrides the URL's)",
			value: func(c *Config) flag.Value { return stringValue{&c.RedisUsername} }},
		{flag: "redis-password", env: "GATEHOUSE_REDIS_PASSWORD", group: GroupServer | GroupRedis, owner: ownerRedisstore,
			usage: "Redis `password` (overrides the URL's; prefer --redis-password-file)",
			value: func(c *Config) flag.Value { return secretValue{&c.RedisPassword} }},
		{flag: "redis-password-file", env: "GATEHOUSE_REDIS_PASSWORD_FILE", group: GroupServer | GroupRedis, owner: ownerRedisstore,
			usage: "`file` holding the Redis password (one trailing newline stripped)",
			value: func(c *Config) flag.Value { return stringValue{&c.RedisPasswordFile} }},
		{flag: "redis-sentinel-master", env: "GATEHOUSE_REDIS_SENTINEL_MASTER", group: GroupServer | GroupRedis, owner: ownerRedisstore,
			usage: "Sentinel master `name` (with --redis-sentinel-addrs)",
			value: func(c *Config) flag.Value { return stringValue{&c.RedisSentinelMaster} }},
		{flag: "redis-sentinel-addrs", env: "GATEHOUSE_REDIS_SENTINEL_ADDRS", group: GroupServer | GroupRedis, owner: ownerRedisstore,
			usage: "Sentinel `addresses`, comma-separated host:port",
			value: func(c *Config) flag.Value { return stringValue{&c.RedisSentinelAddrs} }},
		{flag: "redis-sentinel-password", env: "GATEHOUSE_REDIS_SENTINEL_PASSWORD", group: GroupServer | GroupRedis, owner: ownerRedisstore,
			usage: "the sentinels' own `password` (prefer --redis-sentinel-password-file)",
			value: func(c *Config) flag.Value { return secretValue{&c.RedisSentinelPassword} }},
		{flag: "redis-sentinel-password-file", env: "GATEHOUSE_REDIS_SENTINEL_PASSWORD_FILE", group: GroupServer | GroupRedis, owner: ownerRedisstore,
			usage: "`file` holding the sentinels' password",
			value: func(c *Config) flag.Value { return stringValue{&c.RedisSentinelPasswordFile} }},
		{flag: "redis-cluster-addrs", env: "GATEHOUSE_REDIS_CLUSTER_ADDRS", group: GroupServer | GroupRedis, owner: ownerRedisstore,
			usage: "Redis Cluster node `addresses`, comma-separated host:port",
			value: func(c *Config) flag.Value { return stringValue{&c.RedisClusterAddrs} }},
		{flag: "redis-tls-ca-file", env: "GATEHOUSE_REDIS_TLS_CA_FILE", group: GroupServer | GroupRedis, owner: ownerRedisstore,
			usage: "PEM `file` of the CAs that sign Redis's certificate (turns TLS on)",
			value: func(c *Config) flag.Value { return stringValue{&c.RedisTLSCAFile} }},
		{flag: "redis-tls-cert-file", env: "GATEHOUSE_REDIS_TLS_CERT_FILE", group: GroupServer | GroupRedis, owner: ownerRedisstore,
			usage: "PEM `file` of a client certificate for Redis (with --redis-tls-key-file)",
			value: func(c *Config) flag.Value { return stringValue{&c.RedisTLSCertFile} }},
		{flag: "redis-tls-key-file", env: "GATEHOUSE_REDIS_TLS_KEY_FILE", group: GroupServer | GroupRedis, owner: ownerRedisstore,
			usage: "PEM `file` of the client certificate's key",
			value: func(c *Config) flag.Value { return stringValue{&c.RedisTLSKeyFile} }},
		{flag: "redis-tls-server-name", env: "GATEHOUSE_REDIS_TLS_SERVER_NAME", group: GroupServer | GroupRedis, owner: ownerRedisstore,
			usage: "`name` Redis's certificate must carry (default: the host dialled)",
			value: func(c *Config) flag.Value { return stringValue{&c.RedisTLSServerName} }},
		{flag: "users-file", env: "GATEHOUSE_USERS_FILE", group: GroupServer, owner: ownerUserstore, field: "UsersFile",
			usage: "in-memory user directory from a JSON or YAML `file` of {id, active}",
			value: func(c *Config) flag.Value { return stringValue{&c.UsersFile} }},
		{flag: "directory-origin", env: "GATEHOUSE_DIRECTORY_ORIGIN", group: GroupServer | GroupRedis, owner: ownerServer, field: "DirectoryOrigin",
			usage: "the directory of record, a `url`: postgres:// or postgresql:// (Meet's database, read-only), grpc:// or grpcs:// (a DirectoryService); Redis, when set, is its shared cache (empty: Redis or the users file is the directory)",
			value: func(c *Config) flag.Value { return urlValue{&c.DirectoryOrigin} }},
		{flag: "directory-origin-password-file", env: "GATEHOUSE_DIRECTORY_ORIGIN_PASSWORD_FILE", group: GroupServer, owner: ownerPgorigin,
			usage: "`file` holding the database password of a postgres:// origin (one trailing newline stripped; overrides the URL's)",
			value: func(c *Config) flag.Value { return stringValue{&c.DirectoryOriginPasswordFile} }},
		{flag: "directory-origin-ca-file", env: "GATEHOUSE_DIRECTORY_ORIGIN_CA_FILE", group: GroupServer, owner: ownerGrpcorigin, field: "DirectoryOriginCAFile",
			usage: "PEM `file` of the CAs that sign a grpcs:// origin's certificate (default: the system's)",
			value: func(c *Config) flag.Value { return stringValue{&c.DirectoryOriginCAFile} }},
		{flag: "directory-user-query", env: "GATEHOUSE_DIRECTORY_USER_QUERY", group: GroupServer, owner: ownerPgorigin, field: "DirectoryUserQuery",
			def:   pgorigin.DefaultUserQuery,
			usage: "`SQL` reading a user of a postgres:// origin: one $1 parameter (the id), one boolean column",
			value: func(c *Config) flag.Value { return stringValue{&c.DirectoryUserQuery} }},
		{flag: "directory-app-query", env: "GATEHOUSE_DIRECTORY_APP_QUERY", group: GroupServer, owner: ownerPgorigin, field: "DirectoryAppQuery",
			def:   pgorigin.DefaultAppQuery,
			usage: "`SQL` reading an application of a postgres:// origin (Meet before March 2026: " + pgorigin.LegacyAppQuery + ")",
			value: func(c *Config) flag.Value { return stringValue{&c.DirectoryAppQuery} }},
		{flag: "directory-sub-query", env: "GATEHOUSE_DIRECTORY_SUB_QUERY", group: GroupServer, owner: ownerPgorigin, field: "DirectorySubQuery",
			def:   pgorigin.DefaultSubQuery,
			usage: "SQL `query` finding a user's id by OIDC sub in a postgres:// origin: one $1 parameter, one uuid or text column (used with --oidc-introspection-url)",
			value: func(c *Config) flag.Value { return stringValue{&c.DirectorySubQuery} }},
		{flag: "redis-cache-ttl", env: "GATEHOUSE_REDIS_CACHE_TTL", group: GroupServer, owner: ownerUserstore, field: "RedisCacheTTL",
			def:   dur(userstore.DefaultSharedTTL),
			usage: "with an origin, how long its answer for an active record stays in Redis (a `duration`)",
			value: func(c *Config) flag.Value { return durationValue{&c.RedisCacheTTL} }},
		{flag: "redis-cache-negative-ttl", env: "GATEHOUSE_REDIS_CACHE_NEGATIVE_TTL", group: GroupServer, owner: ownerUserstore, field: "RedisCacheNegativeTTL",
			def:   dur(userstore.DefaultSharedNegativeTTL),
			usage: "with an origin, how long its answer for an unknown or inactive record stays in Redis (a `duration`, 0: not written)",
			value: func(c *Config) flag.Value { return durationValue{&c.RedisCacheNegativeTTL} }},
		{flag: "cache-ttl", env: "GATEHOUSE_CACHE_TTL", group: GroupServer, owner: ownerUserstore, field: "CacheTTL",
			def:   dur(userstore.DefaultTTL),
			usage: "how long an active user stays in the in-process cache (a `duration`)",
			value: func(c *Config) flag.Value { return durationValue{&c.CacheTTL} }},
		{flag: "cache-negative-ttl", env: "GATEHOUSE_CACHE_NEGATIVE_TTL", group: GroupServer, owner: ownerUserstore, field: "CacheNegativeTTL",
			def:   dur(userstore.DefaultNegativeTTL),
			usage: "how long an unknown or inactive user stays in the in-process cache (a `duration`)",
			value: func(c *Config) flag.Value { return durationValue{&c.CacheNegativeTTL} }},
		{flag: "cache-size", env: "GATEHOUSE_CACHE_SIZE", group: GroupServer, owner: ownerUserstore, field: "CacheSize",
			def:   strconv.Itoa(userstore.DefaultCacheSize),
			usage: "maximum `entries` of the in-process cache",
			value: func(c *Config) flag.Value { return intValue{&c.CacheSize} }},
		{flag: "cache-stale-if-error", env: "GATEHOUSE_CACHE_STALE_IF_ERROR", group: GroupServer, owner: ownerServer, field: "CacheStaleIfError",
			def:   dur(server.DefaultCacheStaleIfError),
			usage: "how long past its TTL a cached entry may answer while Redis is down (a `duration`, 0: never)",
			value: func(c *Config) flag.Value { return durationValue{&c.CacheStaleIfError} }},
		{flag: "token-cache-size", env: "GATEHOUSE_TOKEN_CACHE_SIZE", group: GroupServer, owner: ownerAuthz, field: "TokenCacheSize",
			def:   strconv.Itoa(authz.DefaultTokenCacheSize),
			usage: "maximum `entries` of the verified-token cache (0: verify every token in full)",
			value: func(c *Config) flag.Value { return intValue{&c.TokenCacheSize} }},
		{flag: "user-id-format", env: "GATEHOUSE_USER_ID_FORMAT", group: GroupServer | GroupRedis, owner: ownerAuthz, field: "UserIDFormat",
			def:   authz.IDFormatUUID.String(),
			usage: "user id `format`: uuid (normalised to canonical UUIDs) or opaque (used as they are)",
			value: func(c *Config) flag.Value { return stringValue{&c.UserIDFormat} }},
		{flag: "routes", env: "GATEHOUSE_ROUTES", group: GroupServer, owner: ownerServer, field: "Routes",
			usage: "route `table`: a built-in name (meet, authenticate) or a routes file (empty: authenticate everything)",
			value: func(c *Config) flag.Value { return stringValue{&c.Routes} }},
		{flag: "check-applications", env: "GATEHOUSE_CHECK_APPLICATIONS", group: GroupServer, owner: ownerAuthz, field: "CheckApplications",
			def:   "false",
			usage: "refuse tokens whose client_id is not an active application of the directory",
			value: func(c *Config) flag.Value { return boolValue{&c.CheckApplications} }},
		{flag: "log-level", env: "GATEHOUSE_LOG_LEVEL", group: GroupServer, owner: ownerCommand,
			def:   strings.ToLower(slog.LevelInfo.String()),
			usage: "log `level`: debug, info, warn or error",
			value: func(c *Config) flag.Value { return levelValue{&c.LogLevel} }},
		{flag: "log-rate", env: "GATEHOUSE_LOG_RATE", group: GroupServer, owner: ownerLogbudget, field: "LogRate",
			def:   strconv.Itoa(logbudget.DefaultPerSecond),
			usage: "most decision `lines` a listener logs per second below debug (denies, 503s); the rest are counted (0: none)",
			value: func(c *Config) flag.Value { return intValue{&c.LogRate} }},
		{flag: "log-format", env: "GATEHOUSE_LOG_FORMAT", group: GroupServer, owner: ownerCommand,
			def:   DefaultLogFormat,
			usage: "log `format`: json or text",
			value: func(c *Config) flag.Value { return stringValue{&c.LogFormat} }},
		{flag: "omit-dynamic-metadata", env: "GATEHOUSE_OMIT_DYNAMIC_METADATA", group: GroupServer, owner: ownerExtAuthz, field: "OmitDynamicMetadata",
			def:   "false",
			usage: "leave dynamic_metadata (result, reason, user and client ids, decision id) out of ext_authz answers, for proxies that neither log nor rate-limit on it",
			value: func(c *Config) flag.Value { return boolValue{&c.OmitDynamicMetadata} }},
		{flag: "grpc-reflection", env: "GATEHOUSE_GRPC_REFLECTION", group: GroupServer, owner: ownerServer, field: "GRPCReflection",
			def:   "false",
			usage: "serve the gRPC reflection service",
			value: func(c *Config) flag.Value { return boolValue{&c.GRPCReflection} }},
		{flag: "grpc-max-recv-size", env: "GATEHOUSE_GRPC_MAX_RECV_SIZE", group: GroupServer, owner: ownerServer, field: "GRPCMaxRecvSize",
			def:   bytesize.Format(server.DefaultGRPCMaxRecvSize),
			usage: "largest CheckRequest read, a `size` (bytes, or with KiB, MiB, GiB; 4MiB to 1GiB); larger ones get a gRPC error: keep it above the proxy's headers and forwarded body",
			value: func(c *Config) flag.Value { return byteSizeValue{&c.GRPCMaxRecvSize} }},
		{flag: "grpc-max-connection-idle", env: "GATEHOUSE_GRPC_MAX_CONNECTION_IDLE", group: GroupServer, owner: ownerServer, field: "GRPCMaxConnectionIdle",
			def:   dur(server.DefaultGRPCMaxConnectionIdle),
			usage: "how long a gRPC connection may stay without a request before a graceful GOAWAY closes it (a `duration`)",
			value: func(c *Config) flag.Value { return durationValue{&c.GRPCMaxConnectionIdle} }},
		{flag: "realm", env: "GATEHOUSE_REALM", group: GroupServer, keepEmpty: true, owner: ownerServer, field: "Realm",
			usage: "`realm` of WWW-Authenticate challenges (empty: none)",
			value: func(c *Config) flag.Value { return stringValue{&c.Realm} }},
		{flag: "shutdown-timeout", env: "GATEHOUSE_SHUTDOWN_TIMEOUT", group: GroupServer, owner: ownerServer, field: "ShutdownTimeout",
			def:   dur(server.DefaultShutdownTimeout),
			usage: "bound on the graceful stop after SIGTERM (a `duration`)",
			value: func(c *Config) flag.Value { return durationValue{&c.ShutdownTimeout} }},
		{flag: "drain-period", env: "GATEHOUSE_DRAIN_PERIOD", group: GroupServer, owner: ownerServer, field: "DrainPeriod",
			def:   dur(server.DefaultDrainPeriod),
			usage: "how long checks are still answered after SIGTERM, health NOT_SERVING, before the graceful stop (a `duration`; --dev: 0s unless set)",
			value: func(c *Config) flag.Value { return durationValue{&c.DrainPeriod} }},
		{flag: "tls-cert-file", env: "GATEHOUSE_TLS_CERT_FILE", group: GroupServer, owner: ownerServer, field: "TLSCertFile",
			usage: "PEM `file` of the certificate (and chain) of the gRPC and forward-auth listeners: turns TLS on, with --tls-key-file; reloaded when it changes",
			value: func(c *Config) flag.Value { return stringValue{&c.TLSCertFile} }},
		{flag: "tls-key-file", env: "GATEHOUSE_TLS_KEY_FILE", group: GroupServer, owner: ownerServer, field: "TLSKeyFile",
			usage: "PEM `file` of the listeners' private key",
			value: func(c *Config) flag.Value { return stringValue{&c.TLSKeyFile} }},
		{flag: "tls-client-ca-file", env: "GATEHOUSE_TLS_CLIENT_CA_FILE", group: GroupServer, owner: ownerServer, field: "TLSClientCAFile",
			usage: "PEM `file` of the CAs whose client certificates are required (mutual TLS; empty: no client certificate asked)",
			value: func(c *Config) flag.Value { return stringValue{&c.TLSClientCAFile} }},
		{flag: "header-user-id", env: "GATEHOUSE_HEADER_USER_ID", group: GroupServer, owner: ownerExtAuthz, field: "HeaderUserID",
			def:   extauthz.DefaultUserIDHeader,
			usage: "identity `header` carrying the user id",
			value: func(c *Config) flag.Value { return stringValue{&c.HeaderUserID} }},
		{flag: "header-client-id", env: "GATEHOUSE_HEADER_CLIENT_ID", group: GroupServer, owner: ownerExtAuthz, field: "HeaderClientID",
			def:   extauthz.DefaultClientIDHeader,
			usage: "identity `header` carrying the client id",
			value: func(c *Config) flag.Value { return stringValue{&c.HeaderClientID} }},
		{flag: "header-scope", env: "GATEHOUSE_HEADER_SCOPE", group: GroupServer, owner: ownerExtAuthz, field: "HeaderScope",
			def:   extauthz.DefaultScopeHeader,
			usage: "identity `header` carrying the token's scopes",
			value: func(c *Config) flag.Value { return stringValue{&c.HeaderScope} }},
		{flag: "otel-endpoint", env: "GATEHOUSE_OTEL_ENDPOINT", group: GroupServer, owner: ownerServer, field: "OTelEndpoint",
			usage: "OTLP gRPC `endpoint` of the trace collector, host:port or URL (empty: tracing off)",
			value: func(c *Config) flag.Value { return stringValue{&c.OTelEndpoint} }},
		{flag: "otel-insecure", env: "GATEHOUSE_OTEL_INSECURE", group: GroupServer, owner: ownerServer, field: "OTelInsecure",
			def:   "false",
			usage: "send traces to the OTLP endpoint without TLS",
			value: func(c *Config) flag.Value { return boolValue{&c.OTelInsecure} }},
		{flag: "otel-sample-ratio", env: "GATEHOUSE_OTEL_SAMPLE_RATIO", group: GroupServer, owner: ownerServer, field: "OTelSampleRatio",
			def:   strconv.FormatFloat(server.DefaultOTelSampleRatio, 'g', -1, 64),
			usage: "`fraction` of new traces sampled, 0 to 1 (a caller's sampled traceparent is followed)",
			value: func(c *Config) flag.Value { return floatValue{&c.OTelSampleRatio} }},
	}
}

// Setting documents one setting for help texts, docs/configuration.md and the chart.
type Setting struct {
	Flag, Env, Default, Usage string
	// KeepEmpty: the variable set to "" is a value, not "unset".
	KeepEmpty bool
	// Secret: the value is redacted wherever it is printed.
	Secret bool
	// Owner is the component that owns the default and the check.
	Owner string
}

// Settings lists every setting with its flag, variable, default and meaning.
func Settings() []Setting {
	var out []Setting
	for _, s := range settings() {
		out = append(out, Setting{
			Flag: s.flag, Env: s.env, Default: s.def, Usage: strings.ReplaceAll(s.usage, "`", ""),
			KeepEmpty: s.keepEmpty, Secret: s.secret(), Owner: s.owner,
		})
	}
	return out
}

// logKey is the setting's key in the logged configuration: the variable
// without GATEHOUSE_, in lower case.
func (s setting) logKey() string { return strings.ToLower(strings.TrimPrefix(s.env, "GATEHOUSE_")) }

// logValuer is implemented by every flag.Value of the table: the value as
// logged, typed (numbers and booleans stay numbers and booleans in JSON),
// secrets redacted.
type logValuer interface{ logValue() slog.Value }

// LogValue implements slog.LogValuer: every setting of the table, under its
// variable's name without GATEHOUSE_ in lower case, secrets redacted; then
// whether --dev is on.
func (c Config) LogValue() slog.Value {
	table := settings()
	attrs := make([]slog.Attr, 0, len(table)+1)
	for _, s := range table {
		attrs = append(attrs, slog.Attr{Key: s.logKey(), Value: s.value(&c).(logValuer).logValue()})
	}
	attrs = append(attrs, slog.Bool("dev", c.Dev))
	return slog.GroupValue(attrs...)
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

// UnknownVariable is a GATEHOUSE_* environment variable that no setting
// reads, with the setting's variable it most likely misspells ("" when none
// is close).
type UnknownVariable struct {
	Name, Suggestion string
}

// UnknownVariables returns the GATEHOUSE_* variables of environ (KEY=VALUE
// pairs, as os.Environ returns them) that no setting reads, in the order
// given: a misspelt variable would otherwise be ignored without a word.
func UnknownVariables(environ []string) []UnknownVariable {
	table := settings()
	known := make([]string, len(table))
	for i, s := range table {
		known[i] = s.env
	}
	var out []UnknownVariable
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "GATEHOUSE_") || slices.Contains(known, name) {
			continue
		}
		out = append(out, UnknownVariable{Name: name, Suggestion: nearest(name, known)})
	}
	return out
}

// nearest returns the candidate closest to name by edit distance, or "" when
// even the closest needs more edits than a typing slip explains (a third of
// the name past the prefix, at least 2).
func nearest(name string, candidates []string) string {
	best, bestDist := "", -1
	for _, c := range candidates {
		if d := levenshtein(name, c); bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	limit := max(2, (len(name)-len("GATEHOUSE_"))/3)
	if bestDist < 0 || bestDist > limit {
		return ""
	}
	return best
}

// levenshtein is the edit distance (insertions, deletions, substitutions)
// between the bytes of a and b.
func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
