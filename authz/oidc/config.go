package oidc

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Defaults of Config, exported for the settings table. They are Meet's
// (django-lasuite's) defaults where Meet has one.
const (
	DefaultClientID            = "meet"
	DefaultRequiredScope       = "lasuite_meet"
	DefaultAudienceClaim       = "client_id"
	DefaultTimeout             = 5 * time.Second
	DefaultSigningAlgorithm    = "ES256"
	DefaultEncryptionAlgorithm = "RSA-OAEP"
	DefaultEncryptionEncoding  = "A256GCM"
	DefaultCacheTTL            = 60 * time.Second
	DefaultNegativeCacheTTL    = 10 * time.Second
	DefaultCacheSize           = 10000
)

// Client authentication methods at the introspection endpoint (RFC 6749
// §2.3.1, OpenID Connect Core §9).
const (
	ClientSecretPost  = "client_secret_post"
	ClientSecretBasic = "client_secret_basic"
)

// Bounds on what the provider may send. An introspection answer is a few
// hundred bytes; a JWKS a few KiB. Past these the answer is an error.
const (
	maxAnswerBytes = 64 << 10
	maxJWKSBytes   = 1 << 20
	// maxTokenBytes bounds the token posted to the provider. Access tokens
	// are at most a few KiB (a JWT with many claims); anything longer is
	// refused without a round trip.
	maxTokenBytes = 16 << 10
	// maxDescriptionBytes bounds the provider's error_description that is
	// passed on to the client; a longer or non-printable one is dropped.
	maxDescriptionBytes = 256
	// jwksMinRefetch is the least time between two JWKS fetches: a provider
	// that signs with a key it does not publish cannot make every request
	// fetch the JWKS.
	jwksMinRefetch = 10 * time.Second
	// sharedTimeout bounds each call to the shared cache, so that a hung
	// Redis does not eat the whole introspection timeout.
	sharedTimeout = time.Second
)

// SharedCache is the verdict cache shared by the replicas (Redis in
// production: redisstore.(*Store).IntrospectionCache()). Keys are SHA-256
// digests of tokens, never tokens; values are opaque to it.
type SharedCache interface {
	Get(ctx context.Context, key [sha256.Size]byte) (value []byte, found bool, err error)
	Set(ctx context.Context, key [sha256.Size]byte, value []byte, ttl time.Duration) error
}

// Observer receives the metrics; nil means none.
type Observer interface {
	// Introspected: outcome is "active", "refused" (checked answer not
	// active), "provider_401", "error"; d is the provider round trip (and
	// JWKS fetch if any).
	Introspected(outcome string, d time.Duration)
	// CacheLookup: layer "memory" or "shared"; result "hit", "miss", "error".
	CacheLookup(layer, result string)
}

// Outcomes passed to Observer.Introspected.
const (
	OutcomeActive      = "active"
	OutcomeRefused     = "refused"
	OutcomeProvider401 = "provider_401"
	OutcomeError       = "error"
)

// Cache layers and lookup results passed to Observer.CacheLookup.
const (
	LayerMemory = "memory"
	LayerShared = "shared"
	LookupHit   = "hit"
	LookupMiss  = "miss"
	LookupError = "error"
)

// Config configures an Introspector. Zero values take the defaults above.
type Config struct {
	// IntrospectionURL is the provider's introspection endpoint (Meet's
	// OIDC_OP_INTROSPECTION_ENDPOINT); required, http or https.
	IntrospectionURL string
	// Issuer is the provider's issuer URL (Meet's OIDC_OP_URL); required.
	Issuer string
	// ClientID is gatehouse's (Meet's) client id at the provider
	// (OIDC_RS_CLIENT_ID); default "meet".
	ClientID string
	// ClientSecret authenticates ClientID (OIDC_RS_CLIENT_SECRET);
	// required, never logged nor put in an error.
	ClientSecret string
	// ClientAuth is ClientSecretPost (default, as Meet) or ClientSecretBasic.
	ClientAuth string
	// RequiredScopes: an answer's scope must share at least one of them
	// (OIDC_RS_SCOPES); default [DefaultRequiredScope].
	RequiredScopes []string
	// AudienceClaim names the claim holding the calling application
	// (OIDC_RS_AUDIENCE_CLAIM); default "client_id".
	AudienceClaim string
	// Timeout bounds one introspection, JWKS fetch included (OIDC_TIMEOUT);
	// default 5 s.
	Timeout time.Duration
	// CAFile is an optional PEM bundle of CAs for an https provider
	// (default: the system roots).
	CAFile string
	// JWKSURL, when set, makes JWT answers (RFC 9701) required and is where
	// the provider's signing keys are fetched (OIDC_OP_JWKS_ENDPOINT).
	JWKSURL string
	// SigningAlgorithm is the one JWS algorithm accepted (OIDC_RS_SIGNING_ALGO);
	// default ES256.
	SigningAlgorithm string
	// EncryptionKey, when set, makes encrypted answers (JWE) required and
	// decrypts them (OIDC_RS_PRIVATE_KEY_STR); see LoadPrivateKey.
	EncryptionKey crypto.PrivateKey
	// EncryptionAlgorithm and EncryptionEncoding are the one JWE "alg" and
	// "enc" accepted (OIDC_RS_ENCRYPTION_ALGO, OIDC_RS_ENCRYPTION_ENCODING);
	// defaults RSA-OAEP and A256GCM.
	EncryptionAlgorithm, EncryptionEncoding string
	// CacheTTL caps how long an active verdict is cached (it never outlives
	// the token's exp); NegativeCacheTTL is how long a refusal is. Zero
	// takes the default, a negative value disables that caching.
	CacheTTL, NegativeCacheTTL time.Duration
	// CacheSize bounds the in-process verdict cache; default 10000.
	CacheSize int
	// Shared is the cache shared by the replicas; nil: none.
	Shared SharedCache
	// Observer receives metrics; nil: none.
	Observer Observer
	// Logger receives the few lines this package writes; nil: none.
	Logger *slog.Logger
	// HTTPClient is for tests; nil builds one from Timeout and CAFile that
	// follows no redirect.
	HTTPClient *http.Client
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// Accepted algorithms. HMAC is not offered for signatures (a JWKS carries
// public keys), nor RSA1_5 for encryption (padding-oracle prone).
var (
	signingAlgorithms = map[string]bool{
		"ES256": true, "ES384": true, "ES512": true,
		"RS256": true, "RS384": true, "RS512": true,
		"PS256": true, "PS384": true, "PS512": true,
		"EdDSA": true,
	}
	encryptionAlgorithms = map[string]bool{
		"RSA-OAEP": true, "RSA-OAEP-256": true,
		"ECDH-ES": true, "ECDH-ES+A128KW": true, "ECDH-ES+A192KW": true, "ECDH-ES+A256KW": true,
	}
	encryptionEncodings = map[string]bool{
		"A128GCM": true, "A192GCM": true, "A256GCM": true,
		"A128CBC-HS256": true, "A192CBC-HS384": true, "A256CBC-HS512": true,
	}
)

// settings is a validated Config with its defaults applied.
type settings struct {
	introspectionURL string
	issuer           string
	clientID         string
	clientSecret     string
	basicAuth        bool
	requiredScopes   map[string]struct{}
	audienceClaim    string
	timeout          time.Duration
	jwksURL          string
	signingAlg       jose.SignatureAlgorithm
	encryptionKey    crypto.PrivateKey
	encryptionAlg    jose.KeyAlgorithm
	encryptionEnc    jose.ContentEncryption
	cacheTTL         time.Duration
	negativeTTL      time.Duration
	cacheSize        int
	client           *http.Client
	now              func() time.Time
	logger           *slog.Logger
}

func validate(cfg Config) (*settings, error) {
	s := &settings{
		issuer:        cfg.Issuer,
		clientID:      orDefault(cfg.ClientID, DefaultClientID),
		clientSecret:  cfg.ClientSecret,
		audienceClaim: orDefault(cfg.AudienceClaim, DefaultAudienceClaim),
		timeout:       cfg.Timeout,
		cacheTTL:      cfg.CacheTTL,
		negativeTTL:   cfg.NegativeCacheTTL,
		cacheSize:     cfg.CacheSize,
		client:        cfg.HTTPClient,
		now:           cfg.Now,
		logger:        cfg.Logger,
		encryptionKey: cfg.EncryptionKey,
	}
	var err error
	if s.introspectionURL, err = checkURL("IntrospectionURL", cfg.IntrospectionURL); err != nil {
		return nil, err
	}
	if s.issuer == "" {
		return nil, errors.New("oidc: Issuer is required")
	}
	if s.clientSecret == "" {
		return nil, errors.New("oidc: ClientSecret is required")
	}
	switch cfg.ClientAuth {
	case "", ClientSecretPost:
	case ClientSecretBasic:
		s.basicAuth = true
	default:
		return nil, fmt.Errorf("oidc: ClientAuth %q: want %q or %q", cfg.ClientAuth, ClientSecretPost, ClientSecretBasic)
	}
	scopes := cfg.RequiredScopes
	if len(scopes) == 0 {
		scopes = []string{DefaultRequiredScope}
	}
	s.requiredScopes = make(map[string]struct{}, len(scopes))
	for _, sc := range scopes {
		// The answer's scope is split on single spaces: a required scope that
		// is empty or holds a space could never match one of its elements.
		if sc == "" || strings.Contains(sc, " ") {
			return nil, fmt.Errorf("oidc: RequiredScopes: %q is not a single scope", sc)
		}
		s.requiredScopes[sc] = struct{}{}
	}
	switch {
	case s.timeout == 0:
		s.timeout = DefaultTimeout
	case s.timeout < 0:
		return nil, errors.New("oidc: Timeout must not be negative")
	}
	if s.cacheTTL == 0 {
		s.cacheTTL = DefaultCacheTTL
	}
	if s.negativeTTL == 0 {
		s.negativeTTL = DefaultNegativeCacheTTL
	}
	switch {
	case s.cacheSize == 0:
		s.cacheSize = DefaultCacheSize
	case s.cacheSize < 0:
		return nil, errors.New("oidc: CacheSize must not be negative")
	}
	if cfg.JWKSURL != "" {
		if s.jwksURL, err = checkURL("JWKSURL", cfg.JWKSURL); err != nil {
			return nil, err
		}
	}
	alg := orDefault(cfg.SigningAlgorithm, DefaultSigningAlgorithm)
	if !signingAlgorithms[alg] {
		return nil, fmt.Errorf("oidc: SigningAlgorithm %q is not supported", alg)
	}
	s.signingAlg = jose.SignatureAlgorithm(alg)
	keyAlg := orDefault(cfg.EncryptionAlgorithm, DefaultEncryptionAlgorithm)
	if !encryptionAlgorithms[keyAlg] {
		return nil, fmt.Errorf("oidc: EncryptionAlgorithm %q is not supported", keyAlg)
	}
	s.encryptionAlg = jose.KeyAlgorithm(keyAlg)
	enc := orDefault(cfg.EncryptionEncoding, DefaultEncryptionEncoding)
	if !encryptionEncodings[enc] {
		return nil, fmt.Errorf("oidc: EncryptionEncoding %q is not supported", enc)
	}
	s.encryptionEnc = jose.ContentEncryption(enc)
	if s.encryptionKey != nil {
		if s.jwksURL == "" {
			return nil, errors.New("oidc: EncryptionKey needs JWKSURL (encrypted answers are signed JWTs)")
		}
		if err := checkDecryptionKey(s.encryptionKey, keyAlg); err != nil {
			return nil, err
		}
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.client == nil {
		if s.client, err = newHTTPClient(s.timeout, cfg.CAFile); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// checkURL accepts an absolute http(s) URL without user info: a password
// in it would be a secret that could end up in an error or a log line.
func checkURL(field, raw string) (string, error) {
	if raw == "" {
		return "", fmt.Errorf("oidc: %s is required", field)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("oidc: %s is not a URL", field)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("oidc: %s: scheme must be http or https", field)
	}
	if u.Host == "" {
		return "", fmt.Errorf("oidc: %s has no host", field)
	}
	if u.User != nil {
		return "", fmt.Errorf("oidc: %s must not hold user info", field)
	}
	return u.String(), nil
}

// checkDecryptionKey makes sure key can decrypt with alg, so that a wrong
// key is a start-up error rather than every answer refused.
func checkDecryptionKey(key crypto.PrivateKey, alg string) error {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if !strings.HasPrefix(alg, "RSA-") {
			return fmt.Errorf("oidc: EncryptionKey is an RSA key, EncryptionAlgorithm %s needs an EC key", alg)
		}
		if k.N.BitLen() < 2048 {
			return errors.New("oidc: EncryptionKey: RSA key shorter than 2048 bits")
		}
	case *ecdsa.PrivateKey:
		if !strings.HasPrefix(alg, "ECDH-ES") {
			return fmt.Errorf("oidc: EncryptionKey is an EC key, EncryptionAlgorithm %s needs an RSA key", alg)
		}
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return errors.New("oidc: EncryptionKey: unsupported EC curve")
		}
	default:
		return fmt.Errorf("oidc: EncryptionKey: unsupported key type %T", key)
	}
	return nil
}

// LoadPrivateKey reads gatehouse's decryption key from PEM: RSA (PKCS#1 or
// PKCS#8) or EC (SEC 1 or PKCS#8). Errors never quote the key.
func LoadPrivateKey(pemBytes []byte) (crypto.PrivateKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("oidc: private key: no PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("oidc: private key: unsupported PEM block %q", block.Type)
	}
	if err != nil {
		// x509 errors describe the structure, never the key material.
		return nil, fmt.Errorf("oidc: private key: %w", err)
	}
	switch key.(type) {
	case *rsa.PrivateKey, *ecdsa.PrivateKey:
		return key, nil
	default:
		return nil, fmt.Errorf("oidc: private key: %T cannot decrypt (want RSA or EC)", key)
	}
}

// maxProviderConns bounds the connections to the provider (per host: the
// introspection endpoint's, and the JWKS's when it is another).
const maxProviderConns = 32

// newHTTPClient returns the client for the provider: bounded by timeout,
// verifying https against caFile's CAs (or the system's), and following no
// redirect (a redirected introspection would post the token and the secret
// wherever the provider, or whoever answers for it, points).
func newHTTPClient(timeout time.Duration, caFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pemBytes, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("oidc: CAFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("oidc: CAFile %s: no PEM certificate", caFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	tr.ResponseHeaderTimeout = timeout
	// At most maxProviderConns connections to the provider, all kept for
	// reuse: a burst of new tokens (or a client sending garbage ones, each
	// of which costs an introspection, as in Meet) waits for a connection
	// within its timeout instead of opening one per token, and steady
	// traffic does not pay a TCP and TLS handshake per introspection (the
	// default keeps 2 idle connections per host).
	tr.MaxConnsPerHost = maxProviderConns
	tr.MaxIdleConnsPerHost = maxProviderConns
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}, nil
}
