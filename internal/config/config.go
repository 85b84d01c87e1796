// Package config holds gatehouse's configuration: every setting is a command
// line flag whose default comes from a GATEHOUSE_* environment variable, so a
// flag beats the environment, which beats the built-in default.
//
// The package never reads the process environment itself: callers pass a
// lookup function (os.LookupEnv in main, a map in tests), which keeps tests
// hermetic. Secrets (the JWT key, the Redis password) are held in types and
// printed through methods that redact them, so a Config can be logged whole.
//
// One table (settings.go) describes every setting: its variable, flag,
// default, help text, whether empty is a value, and its owner. The flags,
// the environment parsing, Default, the logged configuration (LogValue), the
// help text and the unknown-variable check are derived from it; tests hold
// docs/configuration.md's table and the Helm chart to it. Defaults and checks belong to
// the components: the table takes each default from its owner's constant,
// and ServerConfig hands the values to server.Config, whose Validate (and
// redisstore's, for Redis) decides, SettingError giving its errors back the
// variables' names.
//
// This package is the command's: only cmd/gatehouse imports it (and the
// deployment checks' tests). It imports server, never the reverse.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/authz/extauthz"
	"github.com/gatehouse-authz/gatehouse/authz/oidc"
	"github.com/gatehouse-authz/gatehouse/server"
)

// LookupFunc looks up an environment variable; it has os.LookupEnv's
// signature so that a variable set to the empty string can be told from an
// unset one.
type LookupFunc func(key string) (string, bool)

// Defaults the command owns: the --dev listeners and the log format. Every
// other default is its component's (see the settings table).
const (
	DefaultDevGRPCAddr = "127.0.0.1:9000"
	DefaultDevOpsAddr  = "127.0.0.1:8081"
	DefaultDevHTTPAddr = "127.0.0.1:8080"
	DefaultLogFormat   = "json"
)

// The identity headers' defaults, extauthz's (deployment checks compare
// examples with them).
const (
	DefaultHeaderUserID   = extauthz.DefaultUserIDHeader
	DefaultHeaderClientID = extauthz.DefaultClientIDHeader
	DefaultHeaderScope    = extauthz.DefaultScopeHeader
)

// Config is gatehouse's configuration. Build it with Parse (or Default and
// Bind), then call Validate.
//
// It embeds the server.Config it becomes: a setting the server takes as it
// is (the listeners, the caches, TLS, the headers, tracing...) is set in
// place, and ServerConfig fills in only the fields below, those the
// command holds in another form: secrets given inline or by file, the Redis
// URL and its overrides, names still to be parsed. The embedded JWT,
// Addons, Redis and DirectoryOriginPassword are ServerConfig's to set.
type Config struct {
	server.Config

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

	// MeetProfile is the Meet release line the decisions follow, "2025.10"
	// or "2026.08" (see authz.ParseProfile); it shadows server.Config's.
	MeetProfile string
	// AddonsJWTSecret (or AddonsJWTSecretFile), AddonsJWTAlgorithm,
	// AddonsJWTIssuer and AddonsJWTAudience verify add-on tokens (2026.08
	// profile; no secret: no add-on tokens). Their leeway and require-exp
	// are JWTLeeway's and JWTRequireExp's.
	AddonsJWTSecret     Secret
	AddonsJWTSecretFile string
	AddonsJWTAlgorithm  string
	AddonsJWTIssuer     string
	AddonsJWTAudience   string

	// OIDCClientSecret (or OIDCClientSecretFile) is the introspection
	// client's secret, OIDCRequiredScopes the required scopes as written
	// (comma- or space-separated), OIDCEncryptionKeyFile the PEM file of the
	// key encrypted answers are decrypted with: ServerConfig reads them into
	// server.Config's OIDC, whose other fields the settings fill directly.
	OIDCClientSecret      Secret
	OIDCClientSecretFile  string
	OIDCRequiredScopes    string
	OIDCEncryptionKeyFile string

	// RedisURL is redis://[user:pass@]host:port/db (or rediss://, unix://);
	// empty means no Redis. It may hold a password: print it only through
	// RedactedRedisURL.
	RedisURL string
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

	// DirectoryOriginPasswordFile holds a postgres:// origin's password
	// (the embedded DirectoryOrigin may hold one too: it prints redacted).
	DirectoryOriginPasswordFile string

	// UserIDFormat is "uuid" or "opaque" (see authz.ParseIDFormat); it
	// shadows server.Config's.
	UserIDFormat string

	// LogLevel and LogFormat ("json" or "text") configure logging.
	LogLevel  slog.Level
	LogFormat string

	// Dev is serve --dev: a random secret when none is set, demo users when no
	// directory is configured, loopback listeners unless set explicitly.
	Dev bool
}

// Default returns the built-in defaults: each setting's default of the
// table, parsed as its variable would be.
func Default() Config {
	var c Config
	for _, s := range settings() {
		if s.def == "" {
			continue
		}
		if err := s.value(&c).Set(s.def); err != nil {
			// The table is constant: TestDefaultsParse keeps it valid.
			panic(fmt.Sprintf("config: default of %s: %v", s.env, err))
		}
	}
	return c
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
		if !b.Explicit("drain-period") {
			// No proxy to drain on a developer's machine: Ctrl-C stops.
			c.DrainPeriod = 0
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
		if len(StripNewline(b)) == 0 {
			return nil, fmt.Errorf("JWT secret file %s is empty", c.JWTSecretFile)
		}
		// A file of several keys (docs/deploy.md, Rotating keys): the
		// server verifies with all of them (server.Config.JWTKeysFile);
		// what needs one key — `gatehouse token` signing, the key-length
		// warning — takes the first, which a token without kid is checked
		// against first.
		keys, err := authz.ParseKeys(b)
		if err != nil {
			return nil, fmt.Errorf("JWT secret file %s: %w", c.JWTSecretFile, err)
		}
		return keys[0].Secret, nil
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
	jwt := c.jwtSettings()
	jwt.Secret = secret
	return jwt, nil
}

// jwtSettings returns the token verification settings without the secret.
func (c Config) jwtSettings() authz.JWTConfig {
	return authz.JWTConfig{
		Algorithm:  c.JWTAlgorithm,
		Issuer:     c.JWTIssuer,
		Audience:   c.JWTAudience,
		Leeway:     c.JWTLeeway,
		RequireExp: c.JWTRequireExp,
	}
}

// AddonsSecret returns the add-on tokens' HMAC key, or nil when none is set
// (add-on tokens off). Errors name the variables, never the key.
func (c Config) AddonsSecret() ([]byte, error) {
	s, err := readSecret("GATEHOUSE_ADDONS_JWT_SECRET", c.AddonsJWTSecret, c.AddonsJWTSecretFile)
	if err != nil || s == "" {
		return nil, err
	}
	first, _, _ := strings.Cut(s, "\n")
	if c.AddonsJWTSecretFile == "" || strings.TrimSuffix(first, "\r") != authz.KeysHeader {
		return []byte(s), nil
	}
	// A file of several keys: the first, as for Secret.
	keys, err := authz.ParseKeys([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("GATEHOUSE_ADDONS_JWT_SECRET_FILE: %w", err)
	}
	return keys[0].Secret, nil
}

// HasAddonsSecret reports whether an add-on key is configured.
func (c Config) HasAddonsSecret() bool { return c.AddonsJWTSecret != "" || c.AddonsJWTSecretFile != "" }

// Addons returns the add-on token settings, reading the secret (nil when
// none is set).
func (c Config) Addons() (authz.JWTConfig, error) {
	a := c.addonsSettings()
	var err error
	a.Secret, err = c.AddonsSecret()
	return a, err
}

// addonsSettings returns the add-on token settings without the secret:
// their own algorithm, issuer and audience, the JWT leeway and require-exp.
func (c Config) addonsSettings() authz.JWTConfig {
	return authz.JWTConfig{
		Algorithm:  c.AddonsJWTAlgorithm,
		Issuer:     c.AddonsJWTIssuer,
		Audience:   c.AddonsJWTAudience,
		Leeway:     c.JWTLeeway,
		RequireExp: c.JWTRequireExp,
	}
}

// Profile returns the parsed Meet profile (2025.10 when invalid; Validate
// reports that).
func (c Config) Profile() authz.Profile {
	p, _ := authz.ParseProfile(c.MeetProfile)
	return p
}

// validateProfile checks the profile and the settings that only it reads.
func (c Config) validateProfile() error {
	p, err := authz.ParseProfile(c.MeetProfile)
	if err != nil {
		return fmt.Errorf("GATEHOUSE_MEET_PROFILE: %w", err)
	}
	switch c.AddonsJWTAlgorithm {
	case "HS256", "HS384", "HS512":
	default:
		return fmt.Errorf("GATEHOUSE_ADDONS_JWT_ALGORITHM: unsupported algorithm %q (want HS256, HS384 or HS512)", c.AddonsJWTAlgorithm)
	}
	if _, err := c.AddonsSecret(); err != nil {
		return err
	}
	if p == authz.Profile202608 {
		return nil
	}
	// Refused rather than ignored: they would not do what they say.
	switch {
	case c.HasAddonsSecret():
		return fmt.Errorf("GATEHOUSE_ADDONS_JWT_SECRET: add-on tokens need GATEHOUSE_MEET_PROFILE=%s", authz.ProfileName202608)
	case c.ScopesPrefix != "":
		return fmt.Errorf("GATEHOUSE_SCOPES_PREFIX: needs GATEHOUSE_MEET_PROFILE=%s", authz.ProfileName202608)
	}
	return nil
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

// Validate returns the first problem of c as a one-line error naming the
// variable, or nil. It reads the secret file and the Redis password files
// and checks that the users file can be opened; it never puts a secret in
// the error. Outside --dev, a Redis URL or a users file is required.
//
// The checks are the owners': the token settings here (what "gatehouse
// token" needs), the directory choice, then everything the server is built
// from through server.Config.Validate (which calls redisstore's check of
// the Redis settings), its errors given the variables' names.
func (c Config) Validate() error { return c.validate(!c.Dev) }

// ValidateSuppliedDirectory is Validate for a caller that supplies its own
// directory: neither a Redis URL nor a users file is then required.
func (c Config) ValidateSuppliedDirectory() error { return c.validate(false) }

func (c Config) validate(needDirectory bool) error {
	if err := c.ValidateJWT(); err != nil {
		return err
	}
	if err := c.validateProfile(); err != nil {
		return err
	}
	if err := c.validateDirectory(needDirectory); err != nil {
		return err
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		return fmt.Errorf("GATEHOUSE_LOG_FORMAT: unknown format %q (want json or text)", c.LogFormat)
	}
	sc, err := c.ServerConfig()
	if err != nil {
		return err
	}
	return SettingError(sc.Validate())
}

// validateDirectory checks the choice of directory and that the users file
// can be opened (the server reads it at start).
func (c Config) validateDirectory(needDirectory bool) error {
	switch {
	case c.UsesRedis() && c.UsersFile != "":
		return errors.New("set only one of GATEHOUSE_REDIS_URL (--redis-url) and GATEHOUSE_USERS_FILE (--users-file)")
	case c.DirectoryOrigin != "" && c.UsersFile != "":
		return errors.New("set only one of GATEHOUSE_DIRECTORY_ORIGIN (--directory-origin) and GATEHOUSE_USERS_FILE (--users-file)")
	case !c.UsesRedis() && c.UsersFile == "" && c.DirectoryOrigin == "" && needDirectory:
		return errors.New("no user directory: set GATEHOUSE_DIRECTORY_ORIGIN (--directory-origin), GATEHOUSE_REDIS_URL (--redis-url) or GATEHOUSE_USERS_FILE (--users-file), or run serve --dev")
	case c.UsersFile == "":
		return nil
	}
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
	return nil
}

// ServerConfig returns what the server is built from: the embedded
// server.Config with the fields the command holds in another form filled
// in (the token settings, the profile, the id format, the Redis client),
// the secrets and passwords read from their files. Under --dev without a
// secret, JWT has none (the caller supplies one).
func (c Config) ServerConfig() (server.Config, error) {
	idFormat, err := authz.ParseIDFormat(c.UserIDFormat)
	if err != nil || c.UserIDFormat == "" {
		return server.Config{}, fmt.Errorf("GATEHOUSE_USER_ID_FORMAT: unknown format %q (want uuid or opaque)", c.UserIDFormat)
	}
	sc := c.Config
	sc.JWT = c.jwtSettings()
	sc.UserIDFormat = idFormat
	sc.MeetProfile = c.Profile()
	sc.Addons = c.addonsSettings()
	sc.Redis = nil
	sc.DirectoryOriginPassword = ""
	if c.HasSecret() {
		if sc.JWT.Secret, err = c.Secret(); err != nil {
			return server.Config{}, err
		}
	}
	if sc.Addons.Secret, err = c.AddonsSecret(); err != nil {
		return server.Config{}, err
	}
	sc.JWTKeysFile, sc.AddonsKeysFile = c.JWTSecretFile, c.AddonsJWTSecretFile
	if c.DirectoryOriginPasswordFile != "" {
		if c.DirectoryOrigin == "" {
			return server.Config{}, errors.New("GATEHOUSE_DIRECTORY_ORIGIN_PASSWORD_FILE is set without GATEHOUSE_DIRECTORY_ORIGIN")
		}
		pw, err := readSecret("GATEHOUSE_DIRECTORY_ORIGIN_PASSWORD", "", c.DirectoryOriginPasswordFile)
		if err != nil {
			return server.Config{}, err
		}
		sc.DirectoryOriginPassword = pw
	}
	if c.UsesRedis() {
		cc, err := c.RedisClientConfig()
		if err != nil {
			return server.Config{}, err
		}
		sc.Redis = &cc
	}
	if sc.OIDC, err = c.oidcConfig(); err != nil {
		return server.Config{}, err
	}
	return sc, nil
}

// oidcConfig returns the OIDC introspection settings with the client
// secret and the decryption key read from their files. Without an
// introspection URL, the others must be left alone: set, they would not do
// what their names say.
func (c Config) oidcConfig() (oidc.Config, error) {
	o := c.OIDC
	if o.IntrospectionURL == "" {
		d := Default()
		if c.OIDCClientSecret != "" || c.OIDCClientSecretFile != "" || c.OIDCEncryptionKeyFile != "" ||
			c.OIDCRequiredScopes != d.OIDCRequiredScopes || !reflect.DeepEqual(o, d.OIDC) {
			return oidc.Config{}, errors.New("GATEHOUSE_OIDC_* settings are set without GATEHOUSE_OIDC_INTROSPECTION_URL")
		}
		return oidc.Config{}, nil
	}
	secret, err := readSecret("GATEHOUSE_OIDC_CLIENT_SECRET", c.OIDCClientSecret, c.OIDCClientSecretFile)
	if err != nil {
		return oidc.Config{}, err
	}
	o.ClientSecret = secret
	// The settings' 0 is "not cached"; oidc.Config reads 0 as "the default".
	for _, ttl := range []*time.Duration{&o.CacheTTL, &o.NegativeCacheTTL} {
		if *ttl == 0 {
			*ttl = -1
		}
	}
	o.RequiredScopes = strings.FieldsFunc(c.OIDCRequiredScopes, func(r rune) bool { return r == ',' || r == ' ' })
	if c.OIDCEncryptionKeyFile != "" {
		pem, err := os.ReadFile(c.OIDCEncryptionKeyFile)
		if err != nil {
			return oidc.Config{}, fmt.Errorf("GATEHOUSE_OIDC_ENCRYPTION_KEY_FILE: %w", fileError(err))
		}
		if o.EncryptionKey, err = oidc.LoadPrivateKey(pem); err != nil {
			return oidc.Config{}, fmt.Errorf("GATEHOUSE_OIDC_ENCRYPTION_KEY_FILE: %w", err)
		}
	}
	return o, nil
}

// SettingError gives a *server.ConfigError the names of the variables its
// fields come from ("GATEHOUSE_CACHE_TTL: must be positive, got 0s"); other
// errors, and nil, are returned as they are.
func SettingError(err error) error {
	var ce *server.ConfigError
	if !errors.As(err, &ce) {
		return err
	}
	if ce.With != "" {
		return fmt.Errorf("%s: %w %s", envOf(ce.Field), ce.Err, envOf(ce.With))
	}
	return fmt.Errorf("%s: %w", envOf(ce.Field), ce.Err)
}

// envOf returns the variable of the setting that becomes the server.Config
// field called field, or field itself when none does (Redis: several do).
func envOf(field string) string {
	for _, s := range settings() {
		if s.field == field && field != "Redis" {
			return s.env
		}
	}
	return field
}
