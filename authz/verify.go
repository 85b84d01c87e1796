package authz

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"
	"unique"

	"github.com/golang-jwt/jwt/v5"
)

// Deny decisions of the verification and claim steps (docs/design.md steps 4–8).
var (
	denyTokenExpired     = unauthorized(ReasonTokenExpired, ChallengeInvalidToken, "Token expired.")
	denyInvalidToken     = unauthorized(ReasonInvalidToken, ChallengeInvalidToken, "Invalid token.")
	denyInvalidClaims    = unauthorized(ReasonInvalidClaims, ChallengeInvalidToken, "Invalid token claims.")
	denyInvalidTokenType = unauthorized(ReasonInvalidTokenType, ChallengeInvalidToken, "Invalid token type.")
)

// numericDate is a time claim in whole seconds, floored as PyJWT's int()
// does, or noDate when the token does not carry it. Claims are clamped to
// ±maxClaimSeconds, so noDate is never a claim's value.
type numericDate int64

const noDate numericDate = math.MinInt64

func (d numericDate) set() bool { return d != noDate }

// claims is what gatehouse keeps of a verified token. It is immutable once
// built, so the verified-token cache can share it between goroutines.
// It is kept small (80 bytes, plus the user id when normalising made a new
// one) because the cache holds one per distinct token.
type claims struct {
	// userID is the user_id claim, normalised when the directory uses UUIDs;
	// userIDOK is false when it is not a valid id of the configured format.
	userID   string
	clientID string
	// scope is the scope claim's words joined by single spaces: the
	// x-auth-scope header value, and what hasScope searches.
	scope string

	iat, nbf, exp numericDate
	userIDOK      bool
	// scopeSet is whether Meet sees a scope at all: false means the token
	// has no scope (2025.10: the claim's Python truth value; 2026.08: the
	// normalised list is empty), true that scope lists what it grants.
	scopeSet bool
	// kind is the token kind that decoded the token (2026.08; always the
	// application kind under 2025.10), and flags what its claims hold.
	kind  kindID
	flags claimFlags
	// keyPos is the position of the key that verified the token in its
	// kind's key set (metrics name it; it fits in the padding).
	keyPos uint8
}

// hmacKey is one verification key of a token kind: an HMAC secret and the
// one algorithm it is used with. It is a type of its own so that a kind can
// hold several keys, chosen by the token's kid, without touching the checks.
type hmacKey struct {
	secret []byte
	method *jwt.SigningMethodHMAC
	// id is the key's kid ("" for a single key without one) and pos its
	// place in the kind's list: what metrics name, never the secret.
	id    string
	pos   int
	label string
}

func newHMACKey(secret []byte, alg string) (hmacKey, error) {
	method, err := signingMethod(alg)
	if err != nil {
		return hmacKey{}, err
	}
	if len(secret) == 0 {
		return hmacKey{}, errors.New("JWT secret is empty")
	}
	return hmacKey{secret: secret, method: method}, nil
}

// alg is the "alg" header value tokens signed with the key carry.
func (k *hmacKey) alg() string { return k.method.Alg() }

// verify reports whether sig is the key's signature of signingInput.
func (k *hmacKey) verify(signingInput string, sig []byte) bool {
	return k.method.Verify(signingInput, sig, k.secret) == nil
}

// failure says why a token kind refused a token. Under 2025.10 every
// failure but expiry is "Invalid token."; under 2026.08 it also says whether
// the next kind gets the token: Meet's BaseJWTAuthentication.decode_jwt
// stops on an expired token and on a wrong iss or aud, and passes every other
// PyJWT error on as "cannot decode" (docs/design.md#token-kinds).
type failure uint8

const (
	failNone failure = iota
	// failDecode: the kind cannot decode the token (signature, algorithm,
	// malformed segments or JSON, a claim of the wrong type, a claim PyJWT
	// requires missing); the next kind may.
	failDecode
	// failImmature: iat or nbf in the future. Also "cannot decode", but the
	// answer changes with the clock, which the token cache must know.
	failImmature
	// failExpired: "Token expired.", whatever the next kinds would say.
	failExpired
	// failClaim: a wrong iss or aud: "Invalid token.", likewise final.
	failClaim
)

// deny is the 2025.10 answer of a failure: expiry is "Token expired.",
// everything else "Invalid token.".
func (f failure) deny() *Decision {
	if f == failExpired {
		return &denyTokenExpired
	}
	return &denyInvalidToken
}

// verifier checks one kind of token with PyJWT's semantics, as Meet runs
// them (docs/design.md#token-verification).
type verifier struct {
	cfg JWTConfig
	alg string
	// keys is swapped whole when the keys are reloaded (Authorizer.SetKeys).
	keys   atomic.Pointer[keySet]
	parser *jwt.Parser
	idFmt  IDFormat
}

func newVerifier(cfg JWTConfig, idFmt IDFormat) (*verifier, error) {
	if cfg.Algorithm == "" {
		cfg.Algorithm = DefaultAlgorithm
	}
	ks, err := newKeySet(keysOf(cfg), cfg.Algorithm)
	if err != nil {
		return nil, err
	}
	if cfg.Leeway < 0 {
		return nil, errors.New("JWT leeway is negative")
	}
	cfg.Secret, cfg.Keys = nil, nil // the key set holds them
	v := &verifier{
		cfg: cfg,
		alg: ks.keys[0].alg(),
		// The parser only decodes base64url segments (JSON is read by
		// DecodeJSONObject, as PyJWT reads it). Padding is allowed because
		// PyJWT accepts padded segments.
		parser: jwt.NewParser(jwt.WithPaddingAllowed()),
		idFmt:  idFmt,
	}
	v.keys.Store(ks)
	return v, nil
}

// verify checks an application token as Meet 2025.10 does: its signature
// and registered claims at time now, then Meet's claims. It returns the
// claims, or the deny decision of the first failing check.
func (v *verifier) verify(token string, now time.Time) (*claims, *Decision) {
	c, mc, f := v.decode(token, now)
	if f != failNone {
		return nil, f.deny()
	}
	return v.meetClaims(c, mc)
}

// decode is PyJWT's decode for this kind: signature, header, payload and
// registered claims at time now. It returns the claims read so far (the
// time claims) and the payload, or why the token is refused.
//
// The signature is checked first, on the raw segments, so a forged or garbage
// token costs one HMAC at most and no JSON decoding. The outcome equals
// PyJWT's order (header, algorithm, signature, claims): every failure before
// the time claims is the same failDecode.
func (v *verifier) decode(token string, now time.Time) (*claims, map[string]any, failure) {
	dot2 := strings.LastIndexByte(token, '.')
	if dot2 <= 0 {
		return nil, nil, failDecode
	}
	signingInput, sigSeg := token[:dot2], token[dot2+1:]
	dot1 := strings.IndexByte(signingInput, '.')
	if dot1 <= 0 {
		return nil, nil, failDecode
	}
	headerSeg, payloadSeg := signingInput[:dot1], signingInput[dot1+1:]
	if strings.IndexByte(payloadSeg, '.') >= 0 {
		return nil, nil, failDecode // not three segments
	}
	sig, err := v.parser.DecodeSegment(sigSeg)
	if err != nil {
		return nil, nil, failDecode
	}
	ks := v.keys.Load()
	var header map[string]any
	if ks.byKid {
		// Several keys, each with a kid: the header says which one to use,
		// so it is read before the signature. A token with a kid is checked
		// against that key only (a token naming A but signed with B is
		// refused); one without is checked against each key in order.
		hb, err := v.parser.DecodeSegment(headerSeg)
		if err != nil {
			return nil, nil, failDecode
		}
		var ok bool
		if header, ok = DecodeJSONObject(hb); !ok || !v.headerOK(header) {
			return nil, nil, failDecode
		}
	}
	key := ks.match(header, signingInput, sig)
	if key == nil {
		return nil, nil, failDecode
	}
	if header == nil {
		// The signature is good: the token was made by a holder of the
		// secret. Decode header and payload as PyJWT's json.loads does
		// (DecodeJSONObject), and refuse a header PyJWT refuses (headerOK).
		hb, err := v.parser.DecodeSegment(headerSeg)
		if err != nil {
			return nil, nil, failDecode
		}
		var ok bool
		if header, ok = DecodeJSONObject(hb); !ok || !v.headerOK(header) {
			return nil, nil, failDecode
		}
	}
	pb, err := v.parser.DecodeSegment(payloadSeg)
	if err != nil {
		return nil, nil, failDecode
	}
	mc, ok := DecodeJSONObject(pb)
	if !ok {
		return nil, nil, failDecode
	}
	c, f := v.registered(mc, now)
	if f != failNone {
		return nil, nil, f
	}
	c.keyPos = uint8(key.pos)
	return c, mc, failNone
}

// headerOK applies PyJWT's header rules (those of 2.12, which added crit):
//   - alg is the configured algorithm (a token signed with our key but
//     labelled otherwise is not ours);
//   - kid, when present, is a string;
//   - crit (RFC 7515 §4.1.11), when present (even null), is a non-empty list
//     of strings, each an extension PyJWT understands — only "b64" (RFC
//     7797) — and present in the header;
//   - b64 is not JSON false: that means a detached, unencoded payload, which
//     PyJWT refuses unless the caller passes one, and Meet never does.
func (v *verifier) headerOK(h map[string]any) bool {
	if alg, _ := h["alg"].(string); alg != v.alg {
		return false
	}
	if kid, present := h["kid"]; present {
		if _, isStr := kid.(string); !isStr {
			return false
		}
	}
	if crit, present := h["crit"]; present {
		list, isList := crit.([]any)
		if !isList || len(list) == 0 {
			return false
		}
		for _, e := range list {
			if name, _ := e.(string); name != "b64" {
				return false
			}
		}
		if _, present := h["b64"]; !present {
			return false
		}
	}
	if b64, isBool := h["b64"].(bool); isBool && !b64 {
		return false
	}
	return true
}

// registered applies the registered-claim rules in PyJWT's order (required
// claims, iat, nbf, exp, iss, aud, sub, jti) and returns the time claims.
// A claim PyJWT requires but the token lacks (exp when required, iss or aud
// when configured) and a claim of the wrong type are failDecode; a wrong iss
// or aud is failClaim (PyJWT's InvalidIssuerError, InvalidAudienceError).
func (v *verifier) registered(mc map[string]any, now time.Time) (*claims, failure) {
	c := &claims{}
	var ok bool
	if c.iat, ok = numericClaim(mc, "iat"); !ok {
		return nil, failDecode
	}
	if c.nbf, ok = numericClaim(mc, "nbf"); !ok {
		return nil, failDecode
	}
	if c.exp, ok = numericClaim(mc, "exp"); !ok {
		return nil, failDecode
	}
	if v.cfg.RequireExp && !c.exp.set() {
		return nil, failDecode
	}
	if f := v.timeFailure(c, now); f != failNone {
		return nil, f
	}
	if v.cfg.Issuer != "" {
		iss, present := mc["iss"]
		if !present {
			return nil, failDecode
		}
		if s, isStr := iss.(string); !isStr || s != v.cfg.Issuer {
			return nil, failClaim
		}
	}
	if f := v.audienceFailure(mc); f != failNone {
		return nil, f
	}
	for _, name := range [...]string{"sub", "jti"} {
		if val, present := mc[name]; present {
			if _, isStr := val.(string); !isStr {
				return nil, failDecode
			}
		}
	}
	return c, failNone
}

// meetClaims applies Meet's own claim checks of 2025.10
// (ApplicationJWTAuthentication: user_id, client_id, delegated) to a decoded
// application token and reads its scope.
func (v *verifier) meetClaims(c *claims, mc map[string]any) (*claims, *Decision) {
	// Meet's claim checks (ApplicationJWTAuthentication), in the order of
	// the decision table. Python's truthiness is narrowed on purpose: ids must
	// be non-empty strings and delegated must be JSON true (docs/design.md#meet-claims).
	// Ids travel upstream as header values: one that cannot (a control
	// character, invalid UTF-8, a lone surrogate, see DecodeJSONObject) is
	// refused here rather than forwarded split, dropped or mangled.
	rawUserID, _ := mc["user_id"].(string)
	if rawUserID == "" || !HeaderSafe(rawUserID) {
		return nil, &denyInvalidClaims
	}
	c.clientID, _ = mc["client_id"].(string)
	if c.clientID == "" || !HeaderSafe(c.clientID) {
		return nil, &denyInvalidClaims
	}
	if delegated, _ := mc["delegated"].(bool); !delegated {
		return nil, &denyInvalidTokenType
	}
	c.userID, c.userIDOK = v.normalizeUserID(rawUserID)
	// Meet refuses a falsy scope claim (absent, null, "", [], false, 0)
	// with "Insufficient permissions." and checks membership otherwise, so a
	// truthy claim that grants no word is "Required scope: S".
	c.scopeSet = pyTruthy(mc["scope"])
	c.scope = scopeClaim(mc["scope"])
	if !HeaderSafe(c.scope) {
		return nil, &denyInvalidClaims
	}
	// A deployment has a handful of applications and scope sets but
	// thousands of cached tokens: interning makes every cached token of one
	// application share its client_id and scope strings. Only verified
	// tokens get here, so a client cannot grow the intern table, and its
	// entries go when no cached token refers to them.
	c.clientID = unique.Make(c.clientID).Value()
	c.scope = unique.Make(c.scope).Value()
	return c, nil
}

// normalizeUserID returns the directory key of a user_id claim and whether
// it is an id of the directory's format; when it is not, the claim itself
// (for logs: no such user can exist).
func (v *verifier) normalizeUserID(raw string) (string, bool) {
	if v.idFmt == IDFormatOpaque {
		return raw, true
	}
	if id, ok := NormalizeUUID(raw); ok {
		return id, true
	}
	return raw, false
}

// checkTimes re-checks the time claims against now, with 2025.10's
// answers. It runs on every use of a token, cached or not, so a cached token
// expires exactly when PyJWT would say so.
func (v *verifier) checkTimes(c *claims, now time.Time) *Decision {
	if f := v.timeFailure(c, now); f != failNone {
		return f.deny()
	}
	return nil
}

// timeFailure checks the time claims against now: expired when floor(exp)
// <= now - leeway, not yet valid when floor(iat) or floor(nbf) > now + leeway.
func (v *verifier) timeFailure(c *claims, now time.Time) failure {
	t := float64(now.UnixNano()) / 1e9
	leeway := v.cfg.Leeway.Seconds()
	if c.iat.set() && float64(c.iat) > t+leeway {
		return failImmature
	}
	if c.nbf.set() && float64(c.nbf) > t+leeway {
		return failImmature
	}
	if c.exp.set() && float64(c.exp) <= t-leeway {
		return failExpired
	}
	return failNone
}

// audienceFailure applies PyJWT's aud rules. With no audience configured, a
// token with any truthy aud is refused (failClaim); with one, aud is
// required (a falsy one is missing: failDecode) and must be that string or a
// list of strings containing it (failClaim otherwise).
func (v *verifier) audienceFailure(mc map[string]any) failure {
	aud, present := mc["aud"]
	truthy := present && pyTruthy(aud)
	if v.cfg.Audience == "" {
		if truthy {
			return failClaim
		}
		return failNone
	}
	if !truthy {
		return failDecode // PyJWT: MissingRequiredClaimError("aud")
	}
	switch a := aud.(type) {
	case string:
		if a == v.cfg.Audience {
			return failNone
		}
	case []any:
		found := false
		for _, e := range a {
			s, isStr := e.(string)
			if !isStr {
				return failClaim // PyJWT: "Invalid claim format in token"
			}
			if s == v.cfg.Audience {
				found = true
			}
		}
		if found {
			return failNone
		}
	}
	return failClaim
}

// pyTruthy is Python's truth value of a decoded JSON value.
func pyTruthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case string:
		return x != ""
	case json.Number:
		f, err := x.Float64()
		return err != nil || f != 0 // an unparsable number is not zero
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	default:
		return true
	}
}

// maxClaimSeconds clamps absurd time claims so arithmetic cannot overflow;
// anything this far away is "never" either way.
const maxClaimSeconds = 1 << 53

// numericClaim reads a time claim: absent is fine, present must be a finite
// JSON number, floored to seconds.
func numericClaim(mc map[string]any, name string) (numericDate, bool) {
	val, present := mc[name]
	if !present {
		return noDate, true
	}
	n, isNum := val.(json.Number)
	if !isNum {
		return noDate, false
	}
	if i, err := n.Int64(); err == nil {
		return clampSeconds(float64(i)), true
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return noDate, false
	}
	return clampSeconds(math.Floor(f)), true
}

func clampSeconds(f float64) numericDate {
	switch {
	case f > maxClaimSeconds:
		return maxClaimSeconds
	case f < -maxClaimSeconds:
		return -maxClaimSeconds
	default:
		return numericDate(f)
	}
}

// scopeClaim reads the scope claim as the words it grants, joined by single
// spaces (the x-auth-scope value, and what hasScope searches), the way Meet's
// HasRequiredRoomScope reads it: a string is split on whitespace; a list is
// taken as is, each element one scope. A list element that is not a single
// word (several words, surrounding or inner whitespace, empty, or not a
// string) is one scope that no route's scope can equal: it grants nothing and
// is left out, so the header never presents it as the words it holds. Any
// other shape grants nothing ("").
func scopeClaim(v any) string {
	switch s := v.(type) {
	case string:
		if isJoinedWords(s) {
			return s // the usual case: keep the decoded string, copy nothing
		}
		return strings.Join(strings.Fields(s), " ")
	case []any:
		words := make([]string, 0, len(s))
		for _, e := range s {
			if str, isStr := e.(string); isStr && isWord(str) {
				words = append(words, str)
			}
		}
		return strings.Join(words, " ")
	default:
		return ""
	}
}

// isWord reports whether s is one non-empty word: no whitespace in it, as
// strings.Fields (and Python's str.split) would leave it whole.
func isWord(s string) bool {
	return s != "" && strings.IndexFunc(s, unicode.IsSpace) < 0
}

// isJoinedWords reports whether s is already what strings.Fields and a join
// on single spaces would make of it: ASCII, no whitespace but single spaces
// between words, none at either end. Non-ASCII text takes the slow path,
// because strings.Fields also splits on Unicode spaces.
func isJoinedWords(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= utf8.RuneSelf, c == '\t', c == '\n', c == '\v', c == '\f', c == '\r':
			return false
		case c == ' ' && (i == 0 || i == len(s)-1 || s[i-1] == ' '):
			return false
		}
	}
	return true
}

// hasScope reports whether want is one of the words of scope (a scopeClaim
// result). It allocates nothing.
func hasScope(scope, want string) bool {
	for scope != "" {
		var word string
		word, scope, _ = strings.Cut(scope, " ")
		if word == want {
			return true
		}
	}
	return false
}
