package authz

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/gatehouse-authz/gatehouse/internal/boundedcache"
	"github.com/gatehouse-authz/gatehouse/userstore"
)

// DefaultTokenCacheSize bounds the verified-token cache when Options leaves it
// at zero. Each entry holds a token (a few hundred bytes) and its claims.
const DefaultTokenCacheSize = 10000

// maxTokenCacheTTL bounds how long a token without exp stays cached; a token
// with exp is dropped at exp.
const maxTokenCacheTTL = 10 * time.Minute

// Options configures an Authorizer.
type Options struct {
	// JWT configures token verification (required).
	JWT JWTConfig
	// Directory answers user (and application) lookups (required). Put a
	// userstore cache in front of slow directories.
	Directory userstore.Directory
	// Policy says what each route requires; nil means every request needs
	// authentication and no scope.
	Policy Policy
	// UserIDFormat says how user_id claims are normalised before lookup.
	UserIDFormat IDFormat
	// CheckApplications turns on step 9: the token's client_id must be an
	// active application in the directory. Under Profile202608 the check is
	// always on, as in Meet, and this field is not read.
	CheckApplications bool
	// Profile is the Meet release line to reproduce (zero: Profile202510).
	Profile Profile
	// Addons configures add-on tokens, the second token kind, tried after
	// application tokens (Profile202608 only; an empty Secret turns them
	// off). Its zero Issuer and Audience turn those checks off as JWT's do:
	// Meet's defaults are DefaultAddonsIssuer and DefaultAddonsAudience.
	Addons JWTConfig
	// Introspector, when set, checks OIDC access tokens with their
	// provider: the last token kind, tried when no JWT kind decodes the
	// token (Profile202608 only; docs/oidc.md). Subjects then finds their
	// users by sub, and is required with it.
	Introspector Introspector
	Subjects     userstore.Subjects
	// ScopesPrefix, when set, is removed with a ":" from the front of each
	// scope of a token (Meet's OIDC_RS_SCOPES_PREFIX; Profile202608 only).
	ScopesPrefix string
	// TokenCacheSize bounds the verified-token cache (0: DefaultTokenCacheSize,
	// negative: no cache).
	TokenCacheSize int
	// RetryAfter is the Retry-After sent when the directory cannot answer
	// (0: 1 second).
	RetryAfter time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Decider decides one request; *Authorizer implements it, and so does the
// telemetry wrapper around it. Both proxy adapters take one. Decide must
// honour ctx (it carries the proxy's deadline) and must only return an Allow
// when every check passed.
type Decider interface {
	Decide(ctx context.Context, req *Request) Decision
}

// Recorder is implemented by Deciders that also count and identify the
// decisions an adapter makes without asking them (a request it cannot
// read). Record sets d.DecisionID.
type Recorder interface {
	Record(ctx context.Context, d *Decision)
}

// Authorizer decides requests. It is safe for concurrent use.
type Authorizer struct {
	verifier *verifier
	// kinds are the token kinds tried in order under Profile202608; kinds[0]
	// is the application kind, whose verifier is verifier.
	kinds        []tokenKind
	profile      Profile
	scopesPrefix string
	dir          userstore.Directory
	introspector Introspector
	subjects     userstore.Subjects
	policy       Policy
	checkApps    bool
	retryAfter   int
	now          func() time.Time
	// tokens caches verified tokens by the SHA-256 of their full text (see
	// tokenKey). A hit skips only the signature and JSON decoding: the time
	// claims, the directory, the route and the scope are checked on every
	// request.
	// SetKeys replaces the cache when the keys change (nil: no cache).
	tokens         atomic.Pointer[boundedcache.Cache[[sha256.Size]byte, *claims]]
	tokenCacheSize int
}

// New returns an Authorizer, or an error naming the first invalid option
// (the error never contains the secret).
func New(opts Options) (*Authorizer, error) {
	v, err := newVerifier(opts.JWT, opts.UserIDFormat)
	if err != nil {
		return nil, fmt.Errorf("authz: %w", err)
	}
	if opts.Directory == nil {
		return nil, errors.New("authz: a directory is required")
	}
	a := &Authorizer{
		verifier:     v,
		kinds:        []tokenKind{{id: kindApplication, v: v}},
		profile:      opts.Profile,
		scopesPrefix: opts.ScopesPrefix,
		dir:          opts.Directory,
		introspector: opts.Introspector,
		subjects:     opts.Subjects,
		policy:       opts.Policy,
		checkApps:    opts.CheckApplications,
		retryAfter:   1,
		now:          opts.Now,
	}
	switch opts.Profile {
	case Profile202510:
		// Settings of a later Meet are refused rather than ignored: they
		// would not do what their name says.
		if len(keysOf(opts.Addons)) > 0 {
			return nil, fmt.Errorf("authz: add-on tokens need the %s profile", ProfileName202608)
		}
		if opts.ScopesPrefix != "" {
			return nil, fmt.Errorf("authz: a scopes prefix needs the %s profile", ProfileName202608)
		}
		if opts.Introspector != nil {
			return nil, fmt.Errorf("authz: OIDC access tokens need the %s profile", ProfileName202608)
		}
	case Profile202608:
		if len(keysOf(opts.Addons)) > 0 {
			av, err := newVerifier(opts.Addons, opts.UserIDFormat)
			if err != nil {
				return nil, fmt.Errorf("authz: add-on tokens: %w", err)
			}
			a.kinds = append(a.kinds, tokenKind{id: kindAddon, v: av})
		}
	default:
		return nil, fmt.Errorf("authz: unknown Meet profile %d", opts.Profile)
	}
	if opts.Introspector != nil && opts.Subjects == nil {
		return nil, errors.New("authz: OIDC access tokens need a directory that finds users by sub")
	}
	if a.policy == nil {
		a.policy = AuthenticateAll{}
	}
	if a.now == nil {
		a.now = time.Now
	}
	if opts.RetryAfter > 0 {
		a.retryAfter = int((opts.RetryAfter + time.Second - 1) / time.Second)
	}
	size := opts.TokenCacheSize
	if size == 0 {
		size = DefaultTokenCacheSize
	}
	if size > 0 {
		a.tokenCacheSize = size
		a.tokens.Store(boundedcache.New[[sha256.Size]byte, *claims](size))
	}
	return a, nil
}

// Decide returns the decision for req. It never returns an allow unless every
// check passed; ctx bounds directory lookups, and a directory that cannot
// answer yields an Unavailable decision (503), never an allow.
func (a *Authorizer) Decide(ctx context.Context, req *Request) Decision {
	rule := a.policy.Match(req)
	if rule.Refuse != RefuseNone {
		// Nothing about the request can be decided: no token would help.
		return rule.Refuse.decision()
	}
	if rule.Public {
		return Decision{Result: Allow, Reason: ReasonPublic, Status: http.StatusOK}
	}

	token, deny := bearerToken(req.Authorization)
	if deny != nil {
		return *deny
	}
	if a.profile == Profile202608 {
		return a.decideKinds(ctx, req, rule, token)
	}
	c, deny := a.claims(token)
	if deny != nil {
		return *deny
	}
	id := Identity{UserID: c.userID, ClientID: c.clientID, Scope: c.scope}

	if a.checkApps {
		if d, done := a.lookup(ctx, userstore.App, c.clientID, id); done {
			return d
		}
	}
	if !c.userIDOK {
		// Not an id of the directory's format: no such user (Meet answered a
		// 400 here; an unknown user is the honest answer).
		return withIdentity(denyUserNotFound, id)
	}
	if d, done := a.lookup(ctx, userstore.User, c.userID, id); done {
		return d
	}

	return a.withKey(grant(rule, c, id), c)
}

// withKey names in d the key that verified c.
func (a *Authorizer) withKey(d Decision, c *claims) Decision {
	d.Key = a.keyLabel(c)
	return d
}

// claims returns the verified claims of token, from the cache when the token
// was verified before. Time claims are re-checked against the clock on every
// call, cached or not.
func (a *Authorizer) claims(token string) (*claims, *Decision) {
	now := a.now()
	key, cacheable, c := a.cachedClaims(token, now)
	if c != nil {
		if d := a.verifier.checkTimes(c, now); d != nil {
			return nil, d
		}
		return c, nil
	}
	c, deny := a.verifier.verify(token, now)
	if deny != nil {
		return nil, deny
	}
	if cacheable != nil {
		a.cacheClaims(cacheable, key, c, a.verifier, now)
	}
	return c, nil
}

// cachedClaims looks token up in the verified-token cache: c is its claims
// if they are cached (their time claims not yet re-checked), else nil.
// cache is where the token may be cached (nil: it may not), and key is then
// its key for cacheClaims. The cache is loaded before the keys are (see
// SetKeys), so that claims verified under old keys never reach a new cache.
func (a *Authorizer) cachedClaims(token string, now time.Time) (key [sha256.Size]byte, cache *tokenCache, c *claims) {
	// Only a three-segment token can verify (PyJWT refuses any other as
	// malformed), so only such a token is worth a digest: garbage is refused
	// by verify without paying for SHA-256.
	cache = a.tokens.Load()
	if cache == nil || strings.Count(token, ".") != 2 {
		return key, nil, nil
	}
	key = tokenKey(token)
	c, _ = cache.Get(key, now)
	return key, cache, c
}

type tokenCache = boundedcache.Cache[[sha256.Size]byte, *claims]

// cacheClaims caches the claims c that v verified at now, until the token
// can no longer be valid (at most maxTokenCacheTTL).
func (a *Authorizer) cacheClaims(cache *tokenCache, key [sha256.Size]byte, c *claims, v *verifier, now time.Time) {
	expires := now.Add(maxTokenCacheTTL)
	if c.exp.set() {
		if at := time.Unix(int64(c.exp), 0).Add(v.cfg.Leeway); at.Before(expires) {
			expires = at
		}
	}
	cache.Set(key, c, now, expires)
}

// tokenKey is the verified-token cache key of token: its SHA-256.
//
// Why not the token itself: a cached token would then keep its whole text
// (300–400 bytes, and with it the request header it was sliced from) alive
// for as long as it is cached, which is most of the cache's memory. A 32-byte
// digest holds no pointer, so the GC never scans the cache's keys either.
// SHA-256 keeps the cache exact: a different token — one forged, tampered or
// signed with another key — cannot find a verified token's entry (that would
// take a SHA-256 collision), so it goes through the full check. With SHA-NI
// it costs about 300 ns for a Meet-sized token, against tens of µs of gRPC
// work per check.
func tokenKey(token string) [sha256.Size]byte {
	// Read the string's bytes in place: []byte(token) would copy them to
	// the heap on every request, and Sum256 only reads its input.
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
}

// Deny decisions of the directory steps (docs/design.md steps 9–11).
var (
	denyAppNotFound  = unauthorized(ReasonApplicationNotFound, ChallengeInvalidToken, "Application not found.")
	denyAppDisabled  = unauthorized(ReasonApplicationDisabled, ChallengeInvalidToken, "Application is disabled.")
	denyUserNotFound = unauthorized(ReasonUserNotFound, ChallengeInvalidToken, "User not found.")
	denyUserDisabled = unauthorized(ReasonUserDisabled, ChallengeInvalidToken, "User account is disabled.")
)

// lookup asks the directory for one record. done is true when the request
// must stop here (unknown, inactive, or no answer), with the decision to send.
func (a *Authorizer) lookup(ctx context.Context, kind userstore.Kind, key string, id Identity) (Decision, bool) {
	status, err := a.dir.Lookup(ctx, kind, key)
	if err != nil {
		return a.unavailable(id), true
	}
	switch {
	case status == userstore.Active:
		return Decision{}, false
	case kind == userstore.App && status == userstore.Inactive:
		return withIdentity(denyAppDisabled, id), true
	case kind == userstore.App:
		return withIdentity(denyAppNotFound, id), true
	case status == userstore.Inactive:
		return withIdentity(denyUserDisabled, id), true
	default:
		return withIdentity(denyUserNotFound, id), true
	}
}

// unavailable is the answer when the directory cannot answer: 503, retry.
func (a *Authorizer) unavailable(id Identity) Decision {
	return Decision{
		Result:            Unavailable,
		Reason:            ReasonDirectoryError,
		Status:            http.StatusServiceUnavailable,
		Message:           "Service temporarily unavailable.",
		Identity:          id,
		RetryAfterSeconds: a.retryAfter,
	}
}

// grant is the last step of every decision: the route's rule applied to a
// caller whose token and directory records passed.
func grant(rule Rule, c *claims, id Identity) Decision {
	if d, denied := permission(rule, c); denied {
		return withIdentity(d, id)
	}
	return Decision{Result: Allow, Reason: ReasonAllowed, Status: http.StatusOK, Identity: id}
}

// permission applies the route's rule to an authenticated caller (docs/design.md
// steps 12–14).
func permission(rule Rule, c *claims) (Decision, bool) {
	switch {
	case rule.Deny:
		return forbidden(ReasonRouteDenied, ChallengeNone, "", "Insufficient permissions."), true
	case rule.UnknownAction:
		return forbidden(ReasonUnknownAction, ChallengeNone, "", "Insufficient permissions. Unknown action."), true
	case rule.Scope == "":
		return Decision{}, false
	case !c.scopeSet:
		return forbidden(ReasonNoScope, ChallengeInsufficientScope, rule.Scope, "Insufficient permissions."), true
	case hasScope(c.scope, rule.Scope):
		return Decision{}, false
	}
	return forbidden(ReasonMissingScope, ChallengeInsufficientScope, rule.Scope,
		"Insufficient permissions. Required scope: "+rule.Scope), true
}

func unauthorized(reason Reason, ch Challenge, msg string) Decision {
	return Decision{Result: Deny, Reason: reason, Status: http.StatusUnauthorized, Challenge: ch, Message: msg}
}

func forbidden(reason Reason, ch Challenge, scope, msg string) Decision {
	return Decision{Result: Deny, Reason: reason, Status: http.StatusForbidden, Challenge: ch, Scope: scope, Message: msg}
}

func withIdentity(d Decision, id Identity) Decision {
	d.Identity = id
	return d
}
